import type { Attributes } from '@opentelemetry/api';
import {
  ATTR_CODE_COLUMN_NUMBER,
  ATTR_CODE_FILE_PATH,
  ATTR_CODE_FUNCTION_NAME,
  ATTR_CODE_LINE_NUMBER,
  ATTR_CODE_STACKTRACE,
} from '@opentelemetry/semantic-conventions';
import { sep } from 'node:path';
import { ATTR_POOL_CALL_PATH } from '../signals/semconv';
import { callPathEntry, functionNameOf, isApplicationFrame, parseFrame } from './stack-frame';
import { DeferredStack } from './deferred-stack';
import { formatsNatively, formattedStack, readPrepared, unreadFrames, type UnreadFrames } from './v8-frames';
import { FRAME_CACHE_GROWTH_LIMIT, FrameCache, FrameFields, formatFrame, ScriptCatalog, scriptOf, type ScriptInfo } from './structured-frames';

export { ANONYMOUS_FUNCTION_NAME, isApplicationFrame, parseFrame, type ParsedFrame } from './stack-frame';
export { DeferredStack } from './deferred-stack';

/** The first application frame of a stack: the line a person goes and fixes. */
export interface CallSite {
  /** The frame's function name, or {@link ANONYMOUS_FUNCTION_NAME}: one name on spans, metrics and holders. */
  readonly functionName: string;
  readonly filePath: string;
  readonly line: number;
  readonly column: number;
}

/**
 * A captured, trimmed stack. Every frame in it was on the stack of the checkout it belongs to;
 * checkouts whose captured frames are identical, character for character, share one object.
 */
export interface CapturedStack {
  /** `    at ...` lines, capped by frame count and by length. */
  readonly text: string;
  readonly callSite: CallSite | undefined;
  /**
   * `pool.call_path`: up to {@link CALL_PATH_FRAMES} application frames, innermost first,
   * `name (file:line)` joined by ` ← `; undefined when the captured frames hold no application frame.
   */
  readonly callPath: string | undefined;
  /** `code.stacktrace`, the `code.*` call-site attributes and `pool.call_path`, built once. */
  readonly attributes: Attributes;
}

/** A stack as a lease holds it: read, or still to read (see {@link DeferredStack}). */
export type HeldStack = CapturedStack | DeferredStack<CapturedStack> | undefined;

/** The captured stack of `held`, reading deferred frames now. */
export function resolveStack(held: HeldStack): CapturedStack | undefined {
  return held instanceof DeferredStack ? held.resolve() : held;
}

/** Captures the stack of whoever called `boundary`. */
export interface StackCapture {
  capture(boundary: Function): CapturedStack | undefined;
  /**
   * Captures the same frames as {@link StackCapture.capture}, and reads them only when the result
   * is resolved (see {@link DeferredStack}); where frames cannot wait (source maps, an
   * application's own `Error.prepareStackTrace`: the text is formatted at the capture), the
   * stack is read at once.
   */
  captureDeferred(boundary: Function): HeldStack;
}

/** A {@link StackCapture} that learns, per boundary, how many frames its unread captures take. */
export interface LearningStackCapture extends StackCapture {
  /** Frames an unread capture at `boundary` asks V8 for, once learned (tests and diagnostics). */
  unreadFramesAt(boundary: Function): number | undefined;
}

/** Used when stacks are off (`stackFrames: 0`): captures nothing, costs a call. */
export const NO_STACK_CAPTURE: StackCapture = { capture: () => undefined, captureDeferred: () => undefined };

/** Application frames named by `pool.call_path`. */
export const CALL_PATH_FRAMES = 3;

export interface StackCaptureOptions {
  /** Frames kept at most; at least 1. */
  readonly maxFrames: number;
  /**
   * Frames under these directories belong to the instrumentation and are removed: the compiled
   * code, and its sources, which is where frames point under `--enable-source-maps`.
   */
  readonly ownDirs: readonly string[];
  /** Capture `maxFrames` every time instead of the smallest window that holds the call path. */
  readonly fullStacks?: boolean;
  /** Frames of the first window. Default {@link FIRST_WINDOW_FRAMES}. */
  readonly firstWindow?: number;
  /** Upper bound of the stack text, cut at a line end. Default 8192 characters. */
  readonly maxChars?: number;
  /** Distinct captured stacks remembered at first; grows up to 16 times when call sites outnumber it. Default 256. */
  readonly cacheSize?: number;
}

/**
 * Frames of the first window: as many as the call path names. Measured on Node 24 on the
 * project's two-core VM, per checkout, net of an uninstrumented call: a 1-frame capture with its
 * position read (the floor) ~1.5 µs; each further frame ~0.35 µs to capture and ~0.2 µs to read
 * (structured-frames.ts). A direct caller costs ~2.4–2.7× the floor with 3 frames, ~3.0–3.4×
 * with 4; 2 frames are too few (a caller and its caller, both application code, always widen).
 */
export const FIRST_WINDOW_FRAMES = CALL_PATH_FRAMES;
/**
 * The window a first window grows to when it already reached the application but ends on an
 * application frame with the call path short: the one library frame of an entry point such as
 * pg-pool's `pool.query` (it checks out through the patched `connect`) and the call path past it.
 * Without this step such a path took 16 frames, and since an unread capture takes the most frames
 * its pool function ever needed, every unsampled checkout of that pool paid for 16.
 */
const NEAR_WINDOW_FRAMES = 6;
/**
 * The window for a path through library code: room for an ORM's or query builder's own frames
 * above the pool (more than 8 under TypeORM, Prisma 7 and MikroORM, issue #10) and the
 * application frames after them; longer library paths widen again.
 */
const LIBRARY_WINDOW_FRAMES = 16;
/** Each window past {@link LIBRARY_WINDOW_FRAMES} is this many times the previous one (16 → 64, capped at maxFrames). */
const WIDEN_FACTOR = 4;
const DEFAULT_MAX_CHARS = 8192;
const DEFAULT_CACHE_SIZE = 256;

/** What a window capture returns when a wider capture is needed. */
const WIDER: unique symbol = Symbol('wider window');
type Window = string | typeof WIDER | undefined;

/**
 * Exact stacks at a cost that grows only with the frames needed.
 *
 * The windows rule: a checkout keeps the first window of frames ({@link FIRST_WINDOW_FRAMES});
 * the window grows (to {@link NEAR_WINDOW_FRAMES} when it reached the application, else or then to
 * {@link LIBRARY_WINDOW_FRAMES}, then {@link WIDEN_FACTOR} times, up to
 * `maxFrames`) while it is full and either holds no application frame (a call through library
 * code: an ORM, a query builder), or holds fewer than {@link CALL_PATH_FRAMES} and ends on an
 * application frame (the call path may go on just past it). `fullStacks` keeps `maxFrames`.
 *
 * Capturing costs per frame, so the capture asks V8 for as many frames as the rule needed the
 * last time at the same boundary (the patched pool function), and captures again, wider, only
 * when that was too few. What is kept depends on this checkout's frames alone: a capture larger
 * than needed is cut back to the window the rule picks.
 *
 * Exactness: what a checkout shows (`code.stacktrace`, `code.*`, `pool.call_path`) is derived
 * from its own captured frames only. The cache of parsed results is keyed by everything the
 * shown text is made of, for every kept frame, so it only returns what a fresh parse of this
 * checkout's own frames would build.
 *
 * Two ways to read frames, both exact:
 * - structured, when nothing else formats stacks: our own `Error.prepareStackTrace` reads each
 *   frame's script (application or not) and the few fields that make its text (see
 *   structured-frames.ts); the text is formatted only for a key not seen before;
 * - text, when source maps are on (`--enable-source-maps`) or the application installed its
 *   own `Error.prepareStackTrace` (source-map-support, test runners): the formatted `.stack` is
 *   read, parsed, and is itself the key, so frames name the application's sources.
 */
export function createStackCapture(options: StackCaptureOptions): LearningStackCapture {
  const maxFrames = Math.max(1, options.maxFrames);
  const firstWindow = options.fullStacks === true ? maxFrames : Math.min(maxFrames, Math.max(1, options.firstWindow ?? FIRST_WINDOW_FRAMES));
  const maxChars = options.maxChars ?? DEFAULT_MAX_CHARS;
  const cacheSize = options.cacheSize ?? DEFAULT_CACHE_SIZE;
  const ownPrefixes = options.ownDirs.map((dir) => (dir.endsWith(sep) ? dir : dir + sep));
  const isOwn = (file: string) => ownPrefixes.some((prefix) => file.startsWith(prefix));
  const scripts = new ScriptCatalog(options.ownDirs);
  // One cache per mode: their keys are of different kinds (frame records / formatted text).
  const structuredCache = new FrameCache<CapturedStack>(cacheSize);
  const textCache = new Map<string, CapturedStack>();
  // Grows like FrameCache (see there) when the call sites outnumber it.
  let textCapacity = cacheSize;
  let textDropped = 0;
  /** The record of the kept frames of the capture under way (structured mode), reused. */
  const fields = new FrameFields();
  const siteInfos: (ScriptInfo | undefined)[] = [];
  /** Frames the rule needed at each boundary last time: how many to ask V8 for first. */
  const limitHints = new WeakMap<Function, number>();
  /**
   * The most frames the rule has needed at each boundary to reach an application frame: how many
   * an unread capture takes there (see `captureDeferred`). Only grows, up to `maxFrames`. A path
   * with no application frame in reach (see `keptApplication`) does not count: one such caller of
   * a pool function shared by the whole process would make every unsampled checkout pay its size.
   */
  const unreadLimits = new WeakMap<Function, number>();
  /** Unread captures since the last one that was read at once to learn `unreadLimits`. */
  let unreadSinceProbe = 0;
  /** The boundary of the unread frames being read, when they were too few for the rule. */
  let unreadBoundary: Function | undefined;
  // State of the capture under way, shared with the prepare function below, which V8 calls
  // synchronously inside the capture: one function serves every capture, no closure per call.
  let limit = firstWindow;
  let needed = firstWindow;
  /** The kept frames behind the key prepareStructured returned; formatted only on a cache miss. */
  let keptSites: NodeJS.CallSite[] = [];
  /**
   * Whether the window the rule kept holds an application frame. One that holds none ran out of
   * stack or of `maxFrames` first (a library's own timer or middleware chain calling the pool):
   * more frames would not have found a call site, so its size is not learned for unread captures.
   */
  let keptApplication = true;

  /** Frames the windows rule keeps of `count` captured ones, or WIDER (with `needed` set). */
  const keep = (count: number, isApplication: (index: number) => boolean): number | typeof WIDER => {
    let window = firstWindow;
    for (;;) {
      if (count < window || window >= maxFrames) {
        needed = window;
        const kept = Math.min(count, window);
        keptApplication = false;
        for (let index = 0; index < kept && !keptApplication; index += 1) keptApplication = isApplication(index);
        return kept;
      }
      let applicationFrames = 0;
      let lastIsApplication = false;
      for (let index = 0; index < window; index += 1) {
        lastIsApplication = isApplication(index);
        if (lastIsApplication) applicationFrames += 1;
      }
      if (!mustWiden(applicationFrames, lastIsApplication)) {
        needed = window;
        keptApplication = true;
        return window;
      }
      window = Math.min(maxFrames, nextWindow(window, applicationFrames > 0));
      if (window > limit && count >= limit) {
        needed = window;
        return WIDER;
      }
    }
  };

  /** Classifies the frames' scripts and applies the windows rule; the kept frames go to `keptSites`. */
  const prepareStructured = (_error: Error, sites: NodeJS.CallSite[]): Window => {
    siteInfos.length = 0;
    for (const site of sites) {
      const script = scriptOf(site);
      siteInfos.push(script === undefined ? undefined : scripts.info(script));
    }
    const kept = keep(sites.length, (index) => siteInfos[index]?.kind === 'application');
    if (kept === WIDER) return WIDER;
    keptSites = kept === sites.length ? sites : sites.slice(0, kept);
    // The frames are in `keptSites`; the string only says "captured".
    return '';
  };

  /**
   * The captured stack of kept frames: their record (see structured-frames.ts) is the cache key;
   * the text is formatted only for a record not seen before. `infos` are the frames' scripts
   * when the capture just classified them.
   */
  const readSites = (sites: readonly NodeJS.CallSite[], infos?: readonly (ScriptInfo | undefined)[]): CapturedStack => {
    fields.reset();
    for (let index = 0; index < sites.length; index += 1) {
      const site = sites[index]!;
      let info: ScriptInfo | undefined;
      if (infos !== undefined) info = infos[index];
      else {
        const script = scriptOf(site);
        info = script === undefined ? undefined : scripts.info(script);
      }
      if (info === undefined) fields.addText(site.toString());
      else if (info.kind !== 'own') fields.add(site, info.id);
    }
    const cached = structuredCache.get(fields);
    if (cached !== undefined) return cached;
    const built = buildCapturedStack(formatKept(sites), maxFrames, maxChars, ownPrefixes);
    structuredCache.set(fields, built);
    return built;
  };
  const readDeferred = (sites: readonly NodeJS.CallSite[]): CapturedStack | undefined => {
    try {
      return readSites(sites);
    } finally {
      siteInfos.length = 0;
    }
  };

  /** The text of the kept frames behind the last structured key, ours left out. */
  const formatKept = (sites: readonly NodeJS.CallSite[]): string => {
    let text = '';
    for (const site of sites) {
      const script = scriptOf(site);
      if (script === undefined) text += `    at ${site.toString()}\n`;
      else if (scripts.info(script).kind !== 'own') text += `${formatFrame(site, script)}\n`;
    }
    return text;
  };

  const captureText = (boundary: Function): Window => {
    const text = formattedStack(boundary, limit);
    if (text === undefined) return undefined;
    const lines = text.split('\n');
    const frames: { line: number; application: boolean }[] = [];
    lines.forEach((line, index) => {
      const frame = parseFrame(line);
      if (frame !== undefined) frames.push({ line: index, application: isApplicationFrame(frame) && !isOwn(frame.filePath) });
    });
    const kept = keep(frames.length, (index) => frames[index]!.application);
    if (kept === WIDER) return WIDER;
    // Cut after the last kept frame line; the key is exactly the kept text.
    return kept >= frames.length ? text : lines.slice(0, frames[kept]!.line).join('\n');
  };

  /** Captures above `boundary` as the windows rule says: the captured text, or '' with `keptSites` set. */
  const captureWindow = (boundary: Function, structured: boolean): Window => {
    limit = limitHints.get(boundary) ?? firstWindow;
    let captured: Window;
    for (;;) {
      captured = structured ? asWindow(readPrepared(boundary, limit, prepareStructured)) : captureText(boundary);
      if (captured !== WIDER) break;
      limit = needed;
    }
    if (needed !== limitHints.get(boundary)) limitHints.set(boundary, needed);
    if (keptApplication) learnUnreadLimit(boundary, needed);
    return captured;
  };

  const learnUnreadLimit = (boundary: Function, frames: number): void => {
    const learned = unreadLimits.get(boundary);
    if (learned === undefined || frames > learned) unreadLimits.set(boundary, frames);
  };

  /**
   * Reads unread frames as `prepareStructured` does. Frames captured before the rule learned
   * that this boundary needs more are all kept: each was on the checkout's stack, so the call
   * site, when among them, is still the right one (the call path may name fewer frames); the
   * boundary's next unread captures take as many as the rule asked for.
   */
  const prepareUnread = (error: Error, sites: NodeJS.CallSite[]): Window => {
    const window = prepareStructured(error, sites);
    if (window !== WIDER) return window;
    if (unreadBoundary !== undefined) learnUnreadLimit(unreadBoundary, needed);
    keptSites = sites;
    return '';
  };

  const readUnread = (frames: UnreadFrames): CapturedStack | undefined => {
    limit = frames.limit;
    unreadBoundary = frames.boundary;
    const savedPrepare = Error.prepareStackTrace;
    Error.prepareStackTrace = prepareUnread;
    try {
      // The first read of `stack` formats it, with the prepare function installed now.
      return frames.stack === '' ? readSites(keptSites, siteInfos) : undefined;
    } finally {
      Error.prepareStackTrace = savedPrepare;
      unreadBoundary = undefined;
      keptSites = [];
      siteInfos.length = 0;
    }
  };

  const fromText = (captured: string): CapturedStack => {
    const cached = textCache.get(captured);
    if (cached !== undefined) return cached;
    const built = buildCapturedStack(captured, maxFrames, maxChars, ownPrefixes);
    if (textCache.size >= textCapacity && textDropped >= textCapacity && textCapacity < cacheSize * FRAME_CACHE_GROWTH_LIMIT) {
      textCapacity *= 2;
      textDropped = 0;
    }
    if (textCache.size >= textCapacity) {
      const oldest = textCache.keys().next();
      if (oldest.done !== true) textCache.delete(oldest.value);
      textDropped += 1;
    }
    textCache.set(captured, built);
    return built;
  };

  return {
    unreadFramesAt: (boundary) => unreadLimits.get(boundary),
    capture(boundary) {
      const structured = formatsNatively(Error.prepareStackTrace) && process.sourceMapsEnabled !== true;
      try {
        const captured = captureWindow(boundary, structured);
        if (typeof captured !== 'string') return undefined;
        return structured ? readSites(keptSites, siteInfos) : fromText(captured);
      } finally {
        keptSites = [];
        siteInfos.length = 0;
      }
    },
    captureDeferred(boundary) {
      const structured = formatsNatively(Error.prepareStackTrace) && process.sourceMapsEnabled !== true;
      if (structured) {
        const learned = unreadLimits.get(boundary);
        if (learned !== undefined && ++unreadSinceProbe < UNREAD_PROBE_EVERY) return DeferredStack.of(unreadFrames(boundary, learned), readUnread);
        unreadSinceProbe = 0;
      }
      try {
        const captured = captureWindow(boundary, structured);
        if (typeof captured !== 'string') return undefined;
        return structured ? DeferredStack.of(keptSites, readDeferred) : fromText(captured);
      } finally {
        keptSites = [];
        siteInfos.length = 0;
      }
    },
  };
}

/**
 * The window after `window`, before the frame cap. A window without any application frame is a
 * library path: it goes straight to {@link LIBRARY_WINDOW_FRAMES}, so an unread capture found too
 * narrow (it cannot tell how many frames the path needs) learns a window that reaches past it.
 */
function nextWindow(window: number, holdsApplication: boolean): number {
  if (holdsApplication && window < NEAR_WINDOW_FRAMES) return NEAR_WINDOW_FRAMES;
  return window < LIBRARY_WINDOW_FRAMES ? LIBRARY_WINDOW_FRAMES : window * WIDEN_FACTOR;
}

/** What a structured capture's prepare function answered, as a window. */
function asWindow(prepared: unknown): Window {
  return typeof prepared === 'string' || prepared === WIDER ? prepared : undefined;
}

/** The windows rule (see {@link createStackCapture}), for a full window. */
function mustWiden(applicationFrames: number, lastIsApplication: boolean): boolean {
  return applicationFrames === 0 || (applicationFrames < CALL_PATH_FRAMES && lastIsApplication);
}

/**
 * One in this many unread captures at a boundary is read at once instead, through the windows
 * rule, so that paths seen only in unsampled requests teach `unreadLimits` too.
 */
const UNREAD_PROBE_EVERY = 32;

/**
 * Trims a formatted stack to frames that are not ours, caps it, finds the call site and the
 * call path (paths relative to `cwd` when inside it).
 */
export function buildCapturedStack(
  text: string,
  maxFrames: number,
  maxChars: number,
  ownPrefixes: readonly string[],
  cwd: string = process.cwd(),
): CapturedStack {
  const kept: string[] = [];
  const path: string[] = [];
  let length = 0;
  let callSite: CallSite | undefined;
  for (const line of text.split('\n')) {
    if (kept.length >= maxFrames) break;
    const frame = parseFrame(line);
    if (frame === undefined) continue;
    const file = frame.filePath;
    if (file !== undefined && ownPrefixes.some((prefix) => file.startsWith(prefix))) continue;
    const trimmed = line.trimEnd();
    if (length + trimmed.length + 1 > maxChars) break;
    kept.push(trimmed);
    length += trimmed.length + 1;
    if (!isApplicationFrame(frame)) continue;
    if (path.length < CALL_PATH_FRAMES) path.push(callPathEntry(frame, cwd));
    callSite ??= { functionName: functionNameOf(frame), filePath: frame.filePath, line: frame.line, column: frame.column };
  }
  const stack = kept.join('\n');
  const attributes: Attributes = { [ATTR_CODE_STACKTRACE]: stack };
  const callPath = path.length > 0 ? path.join(' ← ') : undefined;
  if (callSite !== undefined) {
    attributes[ATTR_CODE_FUNCTION_NAME] = callSite.functionName;
    attributes[ATTR_CODE_FILE_PATH] = callSite.filePath;
    attributes[ATTR_CODE_LINE_NUMBER] = callSite.line;
    attributes[ATTR_CODE_COLUMN_NUMBER] = callSite.column;
    attributes[ATTR_POOL_CALL_PATH] = callPath;
  }
  return { text: stack, callSite, callPath, attributes: Object.freeze(attributes) };
}
