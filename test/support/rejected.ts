// The error a promise rejects with, when it is of the expected class; anything else fails the test.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function rejectedWith<E>(p: Promise<unknown>, type: new (...args: any[]) => E): Promise<E> {
  try {
    await p;
  } catch (e) {
    if (e instanceof type) return e;
    throw e;
  }
  throw new Error(`expected a rejection with ${type.name}`);
}
