// The set of mappings the host serves. An edited mapping is loaded, compiled and its golden fixtures
// run; only when all of that passes does it replace the old one, in one assignment. Requests hold
// the Mapping object they started with, so in-flight work finishes on the version it began on.
import { watch, type FSWatcher } from 'node:fs';
import { basename, join, relative, sep } from 'node:path';
import type { WabError } from '../mapping/errors.js';
import { runMappingFixtures } from '../mapping/golden.js';
import { loadMapping, mappingDirs, type Mapping } from '../mapping/loader.js';

export interface MappingStatus {
  name: string;
  version?: string;
  loadedAt?: string;
  fixtures?: number;
  lastError?: string;
  lastErrorAt?: string;
}

export interface ReloadOutcome {
  name: string;
  ok: boolean;
  version?: string;
  errors: string[];
}

export interface RegistryHooks {
  onReload?(outcome: ReloadOutcome): void;
}

export class MappingRegistry {
  private readonly live = new Map<string, Mapping>();
  private readonly status = new Map<string, MappingStatus>();
  private watcher: FSWatcher | undefined;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    readonly dir: string,
    private readonly hooks: RegistryHooks = {},
  ) {}

  get(name: string): Mapping | undefined {
    return this.live.get(name);
  }

  names(): string[] {
    return [...this.live.keys()].sort();
  }

  list(): MappingStatus[] {
    return [...this.status.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Loads every mapping at start. Fixtures are not run here: `wabridge test` and CI do that. */
  loadAll(): ReloadOutcome[] {
    return mappingDirs(this.dir).map((d) => {
      const r = loadMapping(d);
      const name = basename(d);
      if (r.ok) return this.install(r.mapping, undefined);
      return this.fail(name, r.errors.map((e: WabError) => e.message));
    });
  }

  /** Reloads one mapping (or all); serialized so two edits never race each other. */
  reload(name?: string): Promise<ReloadOutcome[]> {
    const names = name ? [name] : mappingDirs(this.dir).map((d) => basename(d));
    const run = this.chain.then(() => Promise.all(names.map((n) => this.reloadOne(n))));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async reloadOne(name: string): Promise<ReloadOutcome> {
    const r = loadMapping(join(this.dir, name));
    if (!r.ok) return this.report(this.fail(name, r.errors.map((e) => e.message)));
    const cases = await runMappingFixtures(r.mapping);
    const failed = cases.filter((c) => c.outcome !== 'pass');
    if (failed.length > 0) {
      return this.report(this.fail(name, failed.map((c) => `golden fixture ${c.dir} ${c.outcome === 'error' ? 'errored' : 'failed'}${c.detail ? `:\n${c.detail}` : ''}`)));
    }
    const previous = this.live.get(name)?.version;
    const outcome = previous === r.mapping.version ? { name, ok: true, version: previous, errors: [] } : this.report(this.install(r.mapping, cases.length));
    // Mappings that extend this one inherit the edit: they are checked and swapped the same way.
    for (const child of [...this.live.values()].filter((m) => m.extends[0] === name)) await this.reloadOne(child.name);
    return outcome;
  }

  private install(mapping: Mapping, fixtures: number | undefined): ReloadOutcome {
    this.live.set(mapping.name, mapping);
    this.status.set(mapping.name, { name: mapping.name, version: mapping.version, loadedAt: mapping.loadedAt.toISOString(), fixtures });
    return { name: mapping.name, ok: true, version: mapping.version, errors: [] };
  }

  /** The old version (if any) keeps serving; the error is kept for /v1/admin/status. */
  private fail(name: string, errors: string[]): ReloadOutcome {
    const prev = this.status.get(name) ?? { name };
    this.status.set(name, { ...prev, lastError: errors.join('\n'), lastErrorAt: new Date().toISOString() });
    return { name, ok: false, version: this.live.get(name)?.version, errors };
  }

  private report(o: ReloadOutcome): ReloadOutcome {
    this.hooks.onReload?.(o);
    return o;
  }

  /** Watches the mappings folder; edits settle for `debounceMs` before a reload. */
  watch(debounceMs = 250): void {
    if (this.watcher) return;
    this.watcher = watch(this.dir, { recursive: true }, (_event, file) => {
      if (!file) return;
      const name = String(file).split(sep)[0];
      if (!name || name.startsWith('.')) return;
      clearTimeout(this.timers.get(name));
      this.timers.set(
        name,
        setTimeout(() => {
          this.timers.delete(name);
          void this.reload(name);
        }, debounceMs),
      );
    });
    this.watcher.on('error', () => undefined);
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  describeDir(): string {
    return relative(process.cwd(), this.dir) || this.dir;
  }
}
