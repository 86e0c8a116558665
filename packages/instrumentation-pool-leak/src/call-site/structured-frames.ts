// Reading V8 CallSite objects cheaply and exactly, for the structured capture mode of stack.ts.
//
// `CallSite#toString` costs ~0.33 µs per frame on the project's VM, about as much as capturing
// the frame. So a checkout reads only what can differ between two calls at one code position
// (measured: ~20–60 ns per getter) into a reused record, without building strings; the frame
// text is formatted from the same fields only when the record is new. The text is a function of
// the record, so a cached text is identical by construction to what this checkout's own frames
// would format to.
import { sep } from 'node:path';
import { isApplicationFile } from './stack-frame';

/** What a script's frames are: this package's, the application's, or a dependency's / Node's. */
export type ScriptKind = 'own' | 'application' | 'library';

export interface ScriptInfo {
  /** Short stand-in for the script name inside keys. */
  readonly id: number;
  readonly kind: ScriptKind;
}

/** Scripts remembered; an application loads a few thousand at most. Past it, names are keys. */
const MAX_SCRIPTS = 4096;

/** Script names → numeric ids and kinds, bounded. V8 hands out one string per script, so lookups hash once. */
export class ScriptCatalog {
  private readonly scripts = new Map<string, ScriptInfo>();
  private nextId = 0;
  private readonly ownPrefixes: readonly string[];

  constructor(ownDirs: readonly string[]) {
    this.ownPrefixes = ownDirs.map((dir) => (dir.endsWith(sep) ? dir : dir + sep));
  }

  info(script: string): ScriptInfo {
    let info = this.scripts.get(script);
    if (info === undefined) {
      const kind = this.kindOf(script);
      // Past the bound a script is not remembered and gets an id of its own each time: its
      // frames are then never found in the cache, which costs time but is never wrong.
      if (this.scripts.size >= MAX_SCRIPTS) return { id: this.nextId++, kind };
      info = { id: this.nextId++, kind };
      this.scripts.set(script, info);
    }
    return info;
  }

  private kindOf(script: string): ScriptKind {
    if (this.ownPrefixes.some((prefix) => script.startsWith(prefix))) return 'own';
    return isApplicationFile(script) ? 'application' : 'library';
  }
}

/** The script of a frame, or undefined for frames without one (native, eval, `Promise.all`). */
export function scriptOf(site: NodeJS.CallSite): string | undefined {
  const script = site.getScriptNameOrSourceURL();
  return typeof script === 'string' && script !== '' ? script : undefined;
}

/**
 * Everything {@link formatFrame} shows of the kept frames, as flat slots, 4 per frame: script
 * id, position and flags (line and column follow from the position), function name (a closure
 * may carry its own `name`), and for a method call the receiver's type (and the method name when
 * the function has none). A frame without a script is kept as V8's own text of it. Reused for
 * every capture: reading a frame allocates nothing.
 */
export class FrameFields {
  readonly slots: (string | number | null)[] = [];
  hash = 0;

  reset(): void {
    this.slots.length = 0;
    this.hash = 0;
  }

  add(site: NodeJS.CallSite, scriptId: number): void {
    const async = site.isAsync() ? 1 : 0;
    const functionName = site.getFunctionName();
    let kind: number;
    let receiver: string | null = null;
    if (site.isConstructor()) kind = 2;
    else if (site.isToplevel()) kind = 4;
    else {
      kind = 6;
      receiver = site.getTypeName();
      if (functionName === null) receiver = `${receiver ?? ''}\u0000${site.getMethodName() ?? ''}`;
    }
    this.push(scriptId, site.getPosition() * 8 + kind + async, functionName, receiver);
  }

  /** A frame without a script (native, eval, `Promise.all`): V8's text of it is the whole key. */
  addText(text: string): void {
    this.push(-1, 0, text, null);
  }

  private push(scriptId: number, place: number, name: string | null, receiver: string | null): void {
    this.slots.push(scriptId, place, name, receiver);
    // A cheap hash: equal records hash alike; a collision costs one more comparison, never a
    // wrong answer, because a hit compares every slot.
    let hash = (Math.imul(this.hash, 31) + scriptId) | 0;
    hash = (Math.imul(hash, 31) + place) | 0;
    hash = (Math.imul(hash, 31) + (name === null ? -1 : name.length)) | 0;
    this.hash = (Math.imul(hash, 31) + (receiver === null ? -1 : receiver.length)) | 0;
  }
}

/** Frames read for a checkout, with what was built from them. */
interface FrameEntry<V> {
  readonly slots: readonly (string | number | null)[];
  readonly value: V;
}

/** How many times its first capacity a {@link FrameCache} may grow to. */
export const FRAME_CACHE_GROWTH_LIMIT = 16;

/**
 * Values built from frames, found again only for identical frames (every slot equal). Bounded:
 * past `capacity` entries the oldest hash bucket is dropped. Adaptive: once as many entries were
 * dropped as the cache holds, the application's call sites outnumber it and every checkout would
 * miss (a miss formats and parses the stack, ~2.5 times a hit), so the capacity doubles, up to
 * {@link FRAME_CACHE_GROWTH_LIMIT} times the first one.
 */
export class FrameCache<V> {
  private readonly buckets = new Map<number, FrameEntry<V>[]>();
  private size = 0;
  private dropped = 0;
  private readonly maxCapacity: number;

  constructor(private capacity: number) {
    this.maxCapacity = capacity * FRAME_CACHE_GROWTH_LIMIT;
  }

  /** Entries the cache holds at most now. */
  get currentCapacity(): number {
    return this.capacity;
  }

  get(fields: FrameFields): V | undefined {
    const bucket = this.buckets.get(fields.hash);
    if (bucket === undefined) return undefined;
    for (const entry of bucket) if (sameSlots(entry.slots, fields.slots)) return entry.value;
    return undefined;
  }

  set(fields: FrameFields, value: V): void {
    if (this.size >= this.capacity && this.dropped >= this.capacity && this.capacity < this.maxCapacity) {
      this.capacity = Math.min(this.maxCapacity, this.capacity * 2);
      this.dropped = 0;
    }
    if (this.size >= this.capacity) {
      const oldest = this.buckets.entries().next();
      if (oldest.done !== true) {
        this.buckets.delete(oldest.value[0]);
        this.size -= oldest.value[1].length;
        this.dropped += oldest.value[1].length;
      }
    }
    const entry = { slots: fields.slots.slice(), value };
    const bucket = this.buckets.get(fields.hash);
    if (bucket === undefined) this.buckets.set(fields.hash, [entry]);
    else bucket.push(entry);
    this.size += 1;
  }
}

function sameSlots(a: readonly (string | number | null)[], b: readonly (string | number | null)[]): boolean {
  if (a.length !== b.length) return false;
  for (let index = 0; index < a.length; index += 1) if (a[index] !== b[index]) return false;
  return true;
}

/**
 * One `    at ...` line in V8's own format, from the fields {@link FrameFields} reads (so without the
 * `[as alias]` suffix V8 adds when a method is stored under another name). Frames without a
 * script are formatted by V8 (`CallSite#toString`), and that text is their record.
 */
export function formatFrame(site: NodeJS.CallSite, script: string): string {
  const location = `${script}:${site.getLineNumber() ?? 0}:${site.getColumnNumber() ?? 0}`;
  const prefix = site.isAsync() ? '    at async ' : '    at ';
  const functionName = site.getFunctionName();
  if (site.isConstructor()) return `${prefix}new ${functionName ?? '<anonymous>'} (${location})`;
  if (site.isToplevel()) return functionName === null ? `${prefix}${location}` : `${prefix}${functionName} (${location})`;
  const typeName = site.getTypeName();
  const name = functionName ?? site.getMethodName() ?? '<anonymous>';
  const label = typeName !== null && !name.startsWith(`${typeName}.`) ? `${typeName}.${name}` : name;
  return `${prefix}${label} (${location})`;
}
