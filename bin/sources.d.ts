export const ROOT: string;
export const BUNDLE_DIR: string;
/** sha256 over the relative path and content of every .ts file under `root`/engine/. */
export function sourcesDigest(root?: string): string;
/** The digest the bundle in `dir` was built from, or undefined when there is none. */
export function bundleDigest(dir?: string): string | undefined;
