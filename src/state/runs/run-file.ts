/**
 * A run as one binary file, for R2: what a checkpoint uploads and a
 * restore reads. The file is the run's pages as they are in SQLite, so an
 * export copies bytes and an import with the same state ids writes them
 * back as they are.
 *
 *   header   16 bytes: "floe-run" · u32 version (1) · u32 0
 *   blocks   each padded to 8 bytes
 *   filters  the bloom filters, one per 32 blocks, each padded to 8 bytes
 *   meta     u32 JSON length · JSON {format, version, epoch, firstEpoch, entries, tombstones,
 *            blocks, bloomPages, last, states: [{id, name, kind}]} · padding to 8 ·
 *            f64 blockOffsets[blocks + 1] · f64 firsts[blocks] · f64 bloomOffsets[bloomPages + 1]
 *   footer   32 bytes: "floe-run" · u32 version · u32 0 · f64 metaOffset · f64 metaLength
 *
 * A reader of a key-group range fetches the footer (the last
 * {@link RUN_FILE_FOOTER_BYTES}), then the meta, then only the byte range
 * of the blocks that hold the range ({@link blockRangeFor}). The state ids
 * in the blocks are those of the file's `states`; an import maps them to
 * the store's own (rewriting the entries when they differ).
 */
import type { KeyGroupRange } from "../../graph/key-groups.js";
import { EntryBatch } from "./entry-batch.js";
import { firstBlockFor } from "./merge-cursor.js";
import { bloomLength } from "./bloom.js";
import { BlockView, blockLength, composite, entryRef } from "./run-format.js";
import type { Pause, RunInfo, RunStore } from "./run-store.js";
import { INDEX_BLOCKS_PER_PAGE, PAGE_BLOCK, PAGE_BLOOM, PAGE_INDEX, type RunPage, type RunSummary } from "./run-writer.js";
import type { StateName } from "./state-names.js";

/** The format's name, at both ends of a file. */
export const RUN_FILE_FORMAT = "floe-run";
/** The version this code writes and reads. */
export const RUN_FILE_VERSION = 1;
/** Bytes of the footer, at the end of every run file. */
export const RUN_FILE_FOOTER_BYTES = 32;
const HEADER_BYTES = 16;
const MAGIC = new TextEncoder().encode(RUN_FILE_FORMAT);

/** Why a run file could not be read. */
export class RunFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RunFileError";
  }
}

/** What a run file's meta says: the run and where its pieces are. */
export interface RunFileMeta {
  readonly epoch: number;
  readonly firstEpoch: number;
  readonly entries: number;
  readonly tombstones: number;
  readonly blocks: number;
  readonly bloomPages: number;
  readonly last: number;
  readonly states: readonly StateName[];
  /** Byte offset of each block in the file; the last is where the blocks end. */
  readonly blockOffsets: Float64Array;
  readonly firsts: Float64Array;
  readonly bloomOffsets: Float64Array;
}

/**
 * The file of live run `runId` of `store`, as parts to upload in order
 * (blocks are not copied). Reads its pages in order, several in one
 * query (`RunStore.sequentialPages`), and yields one page per part, so
 * the caller may pause between parts; the run's pages stay until the
 * iteration ends.
 * Given a lease the caller took (`store.lease`) instead of an id, it
 * exports that run even if a compaction merged it since; the caller
 * releases it.
 */
export function* exportRun(store: RunStore, runOrLease: number | ReturnType<RunStore["lease"]>): Generator<Uint8Array> {
  const { run, release } = typeof runOrLease === "number" ? store.lease(runOrLease) : { run: runOrLease.run, release: () => undefined };
  try {
    yield withMagic(new Uint8Array(HEADER_BYTES));
    let at = HEADER_BYTES;
    const blockOffsets = new Float64Array(run.blocks + 1);
    const bloomOffsets = new Float64Array(run.bloomPages + 1);
    for (const [kind, count, offsets] of [[PAGE_BLOCK, run.blocks, blockOffsets], [PAGE_BLOOM, run.bloomPages, bloomOffsets]] as const) {
      const page = store.sequentialPages(run.id, kind, count);
      for (let p = 0; p < count; p++) {
        offsets[p] = at;
        const bytes = page(p);
        yield bytes;
        at += bytes.length;
        const pad = (8 - (bytes.length & 7)) & 7;
        if (pad > 0) yield new Uint8Array(pad);
        at += pad;
      }
      offsets[count] = at;
    }
    const json = new TextEncoder().encode(
      JSON.stringify({
        format: RUN_FILE_FORMAT,
        version: RUN_FILE_VERSION,
        epoch: run.epoch,
        firstEpoch: run.firstEpoch,
        entries: run.entries,
        tombstones: run.tombstones,
        blocks: run.blocks,
        bloomPages: run.bloomPages,
        last: run.last,
        states: store.names.all(),
      }),
    );
    const jsonEnd = align8(4 + json.length);
    const meta = new Uint8Array(jsonEnd + 8 * (blockOffsets.length + run.firsts.length + bloomOffsets.length));
    new DataView(meta.buffer).setUint32(0, json.length, true);
    meta.set(json, 4);
    const arrays = new Float64Array(meta.buffer, jsonEnd);
    arrays.set(blockOffsets, 0);
    arrays.set(run.firsts, blockOffsets.length);
    arrays.set(bloomOffsets, blockOffsets.length + run.firsts.length);
    yield meta;
    const footer = withMagic(new Uint8Array(RUN_FILE_FOOTER_BYTES));
    const f = new DataView(footer.buffer);
    f.setFloat64(16, at, true);
    f.setFloat64(24, meta.length, true);
    yield footer;
  } finally {
    release();
  }
}

/** Where a file's meta is, from its last {@link RUN_FILE_FOOTER_BYTES} bytes. */
export function readRunFooter(tail: Uint8Array): { metaOffset: number; metaLength: number } {
  if (tail.length < RUN_FILE_FOOTER_BYTES) throw new RunFileError(`a run file ends with a ${RUN_FILE_FOOTER_BYTES}-byte footer; got ${tail.length} bytes`);
  const footer = tail.slice(tail.length - RUN_FILE_FOOTER_BYTES);
  checkMagic(footer, "footer");
  const f = new DataView(footer.buffer);
  return { metaOffset: f.getFloat64(16, true), metaLength: f.getFloat64(24, true) };
}

/** Parses a file's meta (the bytes {@link readRunFooter} points at). */
export function readRunMeta(bytes: Uint8Array): RunFileMeta {
  const own = bytes.slice();
  const jsonLength = new DataView(own.buffer).getUint32(0, true);
  let head: Omit<RunFileMeta, "blockOffsets" | "firsts" | "bloomOffsets"> & { format: string; version: number };
  try {
    head = JSON.parse(new TextDecoder().decode(own.subarray(4, 4 + jsonLength)));
  } catch {
    throw new RunFileError("a run file's meta is not readable");
  }
  if (head.format !== RUN_FILE_FORMAT) throw new RunFileError(`not a floe run file (format ${JSON.stringify(head.format)})`);
  if (head.version !== RUN_FILE_VERSION) throw new RunFileError(`run file version ${head.version} is not supported (this floe reads ${RUN_FILE_VERSION})`);
  const arrays = new Float64Array(own.buffer, align8(4 + jsonLength));
  if (arrays.length !== 2 * head.blocks + 1 + head.bloomPages + 1) throw new RunFileError("a run file's meta is truncated");
  return {
    epoch: head.epoch,
    firstEpoch: head.firstEpoch,
    entries: head.entries,
    tombstones: head.tombstones,
    blocks: head.blocks,
    bloomPages: head.bloomPages,
    last: head.last,
    states: head.states,
    blockOffsets: arrays.subarray(0, head.blocks + 1),
    firsts: arrays.subarray(head.blocks + 1, 2 * head.blocks + 1),
    bloomOffsets: arrays.subarray(2 * head.blocks + 1),
  };
}

/** The blocks (`from` up to `to`, exclusive) and file bytes (`byteStart` up to `byteEnd`) holding key groups `start..end`. */
export function blockRangeFor(meta: RunFileMeta, start: number, end: number): { from: number; to: number; byteStart: number; byteEnd: number } {
  const from = meta.blocks === 0 ? 0 : firstBlockFor(meta.firsts, composite(start, 0));
  let to = from;
  const limit = composite(end + 1, 0);
  while (to < meta.blocks && meta.firsts[to] < limit) to++;
  return { from, to, byteStart: meta.blockOffsets[from], byteEnd: meta.blockOffsets[to] };
}

/** Options of an import. */
export interface ImportOptions {
  /** Only these key groups (inclusive); default all. */
  readonly keyGroupStart?: number;
  readonly keyGroupEnd?: number;
  /** The epoch the new run gets (default: the file's). */
  readonly epoch?: number;
  /** Bytes a ranged import reads at once (default {@link IMPORT_CHUNK_BYTES}; tests use small ones). */
  readonly chunkBytes?: number;
}

/** Imports a whole file held in memory (see {@link importRunBlocks} for a byte range). */
export async function importRunFile(store: RunStore, file: Uint8Array, pause: Pause, options: ImportOptions = {}): Promise<RunInfo | undefined> {
  const { metaOffset, metaLength } = readRunFooter(file);
  checkMagic(file.subarray(0, HEADER_BYTES), "header");
  const meta = readRunMeta(file.subarray(metaOffset, metaOffset + metaLength));
  const whole = (options.keyGroupStart ?? 0) <= 0 && (options.keyGroupEnd ?? 0xffff) >= 0xffff;
  if (whole && meta.states.every((s) => store.stateId(s.name, s.kind) === s.id)) {
    // Same ids: the pages go in as they are.
    const epoch = options.epoch ?? meta.epoch;
    const pages = function* (): Generator<RunPage> {
      for (let b = 0; b < meta.blocks; b++) {
        const at = meta.blockOffsets[b];
        yield { kind: PAGE_BLOCK, page: b, bytes: file.slice(at, at + blockLength(file.subarray(at))) };
      }
      for (let p = 0; p < meta.bloomPages; p++) {
        const at = meta.bloomOffsets[p];
        yield { kind: PAGE_BLOOM, page: p, bytes: file.slice(at, at + bloomLength(file.subarray(at))) };
      }
      yield* indexPagesOf(meta);
    };
    let bytes = 0;
    const list = [...pages()];
    for (const p of list) bytes += p.bytes.length;
    return store.writePages(summaryOf(meta, bytes), list, epoch, options.epoch === undefined ? meta.firstEpoch : epoch, pause);
  }
  const range = blockRangeFor(meta, options.keyGroupStart ?? 0, options.keyGroupEnd ?? 0xffff);
  return importRunBlocks(store, meta, file.subarray(range.byteStart, range.byteEnd), range.byteStart, pause, options);
}

/** A run's index pages, from its file's meta: each block's first (key group, hash), {@link INDEX_BLOCKS_PER_PAGE} to a page, as RunWriter writes them. */
function indexPagesOf(meta: RunFileMeta): RunPage[] {
  const out: RunPage[] = [];
  for (let i = 0; i < meta.blocks; i += INDEX_BLOCKS_PER_PAGE) {
    out.push({ kind: PAGE_INDEX, page: i / INDEX_BLOCKS_PER_PAGE, bytes: new Uint8Array(meta.firsts.slice(i, i + INDEX_BLOCKS_PER_PAGE).buffer) });
  }
  return out;
}

/** What a run imported whole is, from its file's meta and the bytes of its pages. */
function summaryOf(meta: RunFileMeta, bytes: number): RunSummary {
  return {
    entries: meta.entries,
    tombstones: meta.tombstones,
    blocks: meta.blocks,
    bloomPages: meta.bloomPages,
    indexPages: Math.ceil(meta.blocks / INDEX_BLOCKS_PER_PAGE),
    bytes,
    firsts: meta.firsts.slice(),
    last: meta.last,
  };
}

/** Bytes of a run file a ranged import reads at once (and, re-encoded, the most one of its runs gathers). */
export const IMPORT_CHUNK_BYTES = 4 * 1024 * 1024;

/** Reads `length` bytes of a file from `offset` (an R2 ranged get). */
export type ReadRange = (offset: number, length: number) => Promise<Uint8Array>;

/**
 * Imports a run file of `size` bytes read in ranges of at most
 * {@link IMPORT_CHUNK_BYTES}, so that memory stays bounded whatever the
 * file's size: the footer, the meta, then the blocks. A whole file whose
 * state ids are the store's goes in as one run, its pages as they are;
 * otherwise each chunk of the blocks holding the key groups wanted goes in
 * as a run of its own (their keys do not overlap). Resolves with the runs
 * written, in order.
 */
export async function importRunRanged(store: RunStore, read: ReadRange, size: number, pause: Pause, options: ImportOptions = {}): Promise<RunInfo[]> {
  const meta = await readRangedMeta(read, size);
  const start = options.keyGroupStart ?? 0;
  const end = options.keyGroupEnd ?? 0xffff;
  const whole = start <= 0 && end >= 0xffff;
  const chunkBytes = options.chunkBytes ?? IMPORT_CHUNK_BYTES;
  if (whole && meta.states.every((s) => store.stateId(s.name, s.kind) === s.id)) {
    const epoch = options.epoch ?? meta.epoch;
    let bytes = 0;
    const pages = async function* (): AsyncGenerator<RunPage> {
      for (const [kind, count, offsets, lengthOf] of [
        [PAGE_BLOCK, meta.blocks, meta.blockOffsets, blockLength],
        [PAGE_BLOOM, meta.bloomPages, meta.bloomOffsets, bloomLength],
      ] as const) {
        for (let p = 0; p < count; ) {
          const q = chunkEnd(offsets, p, count, chunkBytes);
          const chunk = await read(offsets[p], offsets[q] - offsets[p]);
          for (let i = p; i < q; i++) {
            const at = offsets[i] - offsets[p];
            const length = lengthOf(chunk.subarray(at));
            if (at + length > offsets[i + 1] - offsets[p]) throw new RunFileError(`page ${i} of a run file runs past its end (${length} bytes)`);
            const page = chunk.slice(at, at + length);
            bytes += page.length;
            yield { kind, page: i, bytes: page };
          }
          p = q;
        }
      }
      for (const page of indexPagesOf(meta)) {
        bytes += page.bytes.length;
        yield page;
      }
    };
    return [await store.writePages(() => summaryOf(meta, bytes), pages(), epoch, options.epoch === undefined ? meta.firstEpoch : epoch, pause)];
  }
  // Entries re-encoded: gathered over chunks into runs of up to twice the chunk size (so not a run per chunk).
  const range = blockRangeFor(meta, start, end);
  const runs: RunInfo[] = [];
  let batch = store.batch();
  const flush = async () => {
    const run = await store.writeRun(batch, options.epoch ?? meta.epoch, pause);
    if (run) runs.push(run);
    batch = store.batch();
  };
  for (let b = range.from; b < range.to; ) {
    const e = chunkEnd(meta.blockOffsets, b, range.to, chunkBytes);
    const chunk = await read(meta.blockOffsets[b], meta.blockOffsets[e] - meta.blockOffsets[b]);
    gatherBlocks(store, meta, chunk, meta.blockOffsets[b], b, e, start, end, batch);
    if (batch.sizeBytes >= 2 * chunkBytes) await flush();
    b = e;
  }
  await flush();
  return runs;
}

/** A run file's meta, read in ranges: its header, its footer, then the meta the footer points at. */
async function readRangedMeta(read: ReadRange, size: number): Promise<RunFileMeta> {
  if (size < HEADER_BYTES + RUN_FILE_FOOTER_BYTES) throw new RunFileError(`a run file has at least ${HEADER_BYTES + RUN_FILE_FOOTER_BYTES} bytes; got ${size}`);
  checkMagic(await read(0, HEADER_BYTES), "header");
  const { metaOffset, metaLength } = readRunFooter(await read(size - RUN_FILE_FOOTER_BYTES, RUN_FILE_FOOTER_BYTES));
  if (metaOffset < HEADER_BYTES || metaOffset + metaLength > size - RUN_FILE_FOOTER_BYTES) throw new RunFileError("a run file's footer points outside it");
  return readRunMeta(await read(metaOffset, metaLength));
}

/** A run file opened for a lazy import: the run {@link RunStore.openFill} published for it, and how to read its blocks. */
export interface OpenedRunFile {
  readonly runId: number;
  readonly meta: RunFileMeta;
  readonly read: ReadRange;
}

/**
 * Opens a run file of `size` bytes for a lazy import into `store`: reads
 * its meta and bloom filters and publishes its run with no block yet
 * ({@link RunStore.openFill}); {@link readRunBlocks} then reads the blocks
 * as they are wanted. Undefined (nothing written) when the file's state
 * ids are not the store's: its entries must be rewritten, by
 * {@link importRunRanged}.
 */
export async function openRunFile(
  store: RunStore,
  read: ReadRange,
  size: number,
  pause: Pause,
  epoch?: number,
  /** The key groups of the file that are state here (see RunInfo.keyGroups); absent: all. */
  clip?: KeyGroupRange,
): Promise<OpenedRunFile | undefined> {
  const meta = await readRangedMeta(read, size);
  if (!meta.states.every((s) => store.stateId(s.name, s.kind) === s.id)) return undefined;
  const pages: RunPage[] = [];
  if (meta.bloomPages > 0) {
    const start = meta.bloomOffsets[0];
    const filters = await read(start, meta.bloomOffsets[meta.bloomPages] - start);
    pages.push(...pagesIn(filters, start, meta.bloomOffsets, 0, meta.bloomPages, PAGE_BLOOM, bloomLength));
  }
  pages.push(...indexPagesOf(meta));
  let bytes = meta.blockOffsets[meta.blocks] - meta.blockOffsets[0];
  for (const p of pages) bytes += p.bytes.length;
  const summary = { ...summaryOf(meta, bytes), bytes };
  const run = await store.openFill(summary, pages, epoch ?? meta.epoch, epoch === undefined ? meta.firstEpoch : epoch, pause, clip);
  return { runId: run.id, meta, read };
}

/** Reads blocks `from` up to `to` (exclusive) of an opened file, in one ranged read: their pages, for {@link RunStore.fillBlocks}. */
export async function readRunBlocks(file: OpenedRunFile, from: number, to: number): Promise<RunPage[]> {
  const offsets = file.meta.blockOffsets;
  if (from >= to) return [];
  const chunk = await file.read(offsets[from], offsets[to] - offsets[from]);
  return pagesIn(chunk, offsets[from], offsets, from, to, PAGE_BLOCK, blockLength);
}

/** The pages `from` up to `to` of `chunk`, the file's bytes from `chunkStart` on. */
function pagesIn(chunk: Uint8Array, chunkStart: number, offsets: Float64Array, from: number, to: number, kind: RunPage["kind"], lengthOf: (b: Uint8Array) => number): RunPage[] {
  if (chunk.length !== offsets[to] - chunkStart) throw new RunFileError(`a read of pages ${from}..${to} gave ${chunk.length} bytes, not ${offsets[to] - chunkStart}`);
  const out: RunPage[] = [];
  for (let i = from; i < to; i++) {
    const at = offsets[i] - chunkStart;
    const length = lengthOf(chunk.subarray(at));
    if (at + length > offsets[i + 1] - chunkStart) throw new RunFileError(`page ${i} of a run file runs past its end (${length} bytes)`);
    out.push({ kind, page: i, bytes: chunk.slice(at, at + length) });
  }
  return out;
}

/** The end (exclusive) of the chunk of pages from `p` that spans at most `chunkBytes` (one page at least). */
function chunkEnd(offsets: Float64Array, p: number, count: number, chunkBytes: number): number {
  let q = p + 1;
  while (q < count && offsets[q + 1] - offsets[p] <= chunkBytes) q++;
  return q;
}

/**
 * Imports the entries of key groups `keyGroupStart..keyGroupEnd` from
 * `bytes`, the file's bytes from offset `byteStart` on that cover those
 * blocks ({@link blockRangeFor}), mapping state ids by name to the store's
 * own. Writes a new run (undefined when the range holds nothing).
 */
export async function importRunBlocks(store: RunStore, meta: RunFileMeta, bytes: Uint8Array, byteStart: number, pause: Pause, options: ImportOptions = {}): Promise<RunInfo | undefined> {
  const start = options.keyGroupStart ?? 0;
  const end = options.keyGroupEnd ?? 0xffff;
  const range = blockRangeFor(meta, start, end);
  return importBlocks(store, meta, bytes, byteStart, range.from, range.to, start, end, options.epoch ?? meta.epoch, pause);
}

/** Imports the entries of key groups `start..end` in blocks `from` up to `to` (exclusive) as one run. */
async function importBlocks(
  store: RunStore,
  meta: RunFileMeta,
  bytes: Uint8Array,
  byteStart: number,
  from: number,
  to: number,
  start: number,
  end: number,
  epoch: number,
  pause: Pause,
): Promise<RunInfo | undefined> {
  const batch: EntryBatch = store.batch();
  gatherBlocks(store, meta, bytes, byteStart, from, to, start, end, batch);
  return store.writeRun(batch, epoch, pause);
}

/** Adds the entries of key groups `start..end` in blocks `from` up to `to` (exclusive) to `batch`, mapping state ids by name. */
function gatherBlocks(store: RunStore, meta: RunFileMeta, bytes: Uint8Array, byteStart: number, from: number, to: number, start: number, end: number, batch: EntryBatch): void {
  const ids = new Map(meta.states.map((s) => [s.id, store.stateId(s.name, s.kind)]));
  const ref = entryRef();
  const decoder = new TextDecoder();
  for (let b = from; b < to; b++) {
    const from = meta.blockOffsets[b] - byteStart;
    if (from < 0 || meta.blockOffsets[b + 1] - byteStart > bytes.length) throw new RunFileError(`block ${b} lies outside the bytes given`);
    const view = new BlockView(bytes.subarray(from, from + (meta.blockOffsets[b + 1] - meta.blockOffsets[b])));
    for (let i = view.lowerBoundKeyGroup(start); i < view.count && view.keyGroups[i] <= end; i++) {
      view.read(i, ref);
      const id = ids.get(ref.stateId);
      if (id === undefined) throw new RunFileError(`a run file's entry has state id ${ref.stateId}, which its meta does not name`);
      const key = decoder.decode(view.bytes.subarray(ref.keyOffset, ref.keyOffset + ref.keyLength));
      if (ref.valueLength < 0) batch.delete(id, ref.keyGroup, ref.hash, key);
      else batch.putEncoded(id, ref.keyGroup, ref.hash, key, view.bytes, ref.valueOffset, ref.valueLength);
    }
  }
}

function withMagic(bytes: Uint8Array): Uint8Array {
  bytes.set(MAGIC, 0);
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(8, RUN_FILE_VERSION, true);
  return bytes;
}

function checkMagic(bytes: Uint8Array, where: string): void {
  for (let i = 0; i < MAGIC.length; i++) if (bytes[i] !== MAGIC[i]) throw new RunFileError(`not a floe run file (bad ${where})`);
  const version = new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true);
  if (version !== RUN_FILE_VERSION) throw new RunFileError(`run file version ${version} is not supported (this floe reads ${RUN_FILE_VERSION})`);
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

