/**
 * Turns entries given in sorted order into the pages of one run: blocks,
 * the bloom filter of each partition of blocks, and the index. Pure: the
 * caller stores the pages it takes ({@link RunWriter.takePages}) and yields
 * between them.
 */
import { type BloomProbe, bloomAdd, bloomCreate, bloomProbe } from "./bloom.js";
import { BLOCK_MAX_ENTRIES, BLOCK_TARGET_BYTES, BlockBuilder, MAX_PAGE_BYTES, composite } from "./run-format.js";

/** What a page of a run holds. */
export const PAGE_BLOCK = 0;
/** A bloom filter over the entries of {@link BLOCKS_PER_BLOOM} consecutive blocks. */
export const PAGE_BLOOM = 1;
/** A piece of the index: the first (keyGroup, hash) of each block, as float64 {@link composite}s. */
export const PAGE_INDEX = 2;
/** Blocks covered by one bloom filter: its filter is ~1/25 of their size, so caching it pays more than caching them. */
export const BLOCKS_PER_BLOOM = 32;
/** Blocks whose first keys fit one index page (1 MiB of float64s). */
export const INDEX_BLOCKS_PER_PAGE = 131072;

/** One row of a run's pages table. */
export interface RunPage {
  readonly kind: typeof PAGE_BLOCK | typeof PAGE_BLOOM | typeof PAGE_INDEX;
  readonly page: number;
  readonly bytes: Uint8Array;
}

/** What a finished run holds, as its metadata row records it. */
export interface RunSummary {
  readonly entries: number;
  readonly tombstones: number;
  readonly blocks: number;
  readonly bloomPages: number;
  readonly indexPages: number;
  /** Bytes of every page. */
  readonly bytes: number;
  /** The first (keyGroup, hash) of each block, as {@link composite}s. */
  readonly firsts: Float64Array;
  /** The (keyGroup, hash) of the last entry (-1 when empty). */
  readonly last: number;
}

/** Builds one run from entries added in (keyGroup, hash, stateId, key) order. */
export class RunWriter {
  private readonly block = new BlockBuilder();
  private pages: RunPage[] = [];
  private firsts = new Float64Array(64);
  private blocks = 0;
  private entries = 0;
  private tombstones = 0;
  private bytes = 0;
  private lastKeyGroup = -1;
  private lastHash = -1;
  private blockFirst = 0;
  /** Probes of the entries of the partition being filled (h1, h2 pairs). */
  private probes = new Uint32Array(2 * 4096);
  private probeCount = 0;
  private bloomPages = 0;
  private readonly probe: BloomProbe = { h1: 0, h2: 0 };

  constructor(private readonly targetBlockBytes = BLOCK_TARGET_BYTES) {}

  /** Adds an entry whose key is text (`value` null: a tombstone). */
  addText(keyGroup: number, hash: number, stateId: number, key: string, value: Uint8Array | null, valueOffset = 0, valueLength = value?.length ?? -1): void {
    this.before(keyGroup, hash, 10 + key.length * 3 + Math.max(valueLength, 0));
    this.block.addText(keyGroup, hash, stateId, key, value, valueOffset, valueLength);
    this.after(stateId, hash, value === null || valueLength < 0);
  }

  /** Adds an entry whose key and value are bytes (`valueLength` -1: a tombstone). */
  addBytes(keyGroup: number, hash: number, stateId: number, src: Uint8Array, keyOffset: number, keyLength: number, valueSrc: Uint8Array, valueOffset: number, valueLength: number): void {
    this.before(keyGroup, hash, 10 + keyLength + Math.max(valueLength, 0));
    this.block.addBytes(keyGroup, hash, stateId, src, keyOffset, keyLength, valueSrc, valueOffset, valueLength);
    this.after(stateId, hash, valueLength < 0);
  }

  /** Entries added so far. */
  get count(): number {
    return this.entries;
  }

  /** Pages finished since the last call, to be stored in this order. */
  takePages(): RunPage[] {
    const out = this.pages;
    this.pages = [];
    return out;
  }

  /** Whether finished pages wait to be taken. */
  get hasPages(): boolean {
    return this.pages.length > 0;
  }

  /** Finishes the last block, its bloom filter and the index; the remaining pages are then taken. */
  finish(): RunSummary {
    if (this.block.count > 0) this.endBlock();
    if (this.probeCount > 0) this.endBloom();
    const firsts = this.firsts.slice(0, this.blocks);
    let indexPages = 0;
    for (let i = 0; i < this.blocks; i += INDEX_BLOCKS_PER_PAGE) {
      const piece = firsts.slice(i, Math.min(i + INDEX_BLOCKS_PER_PAGE, this.blocks));
      this.emit(PAGE_INDEX, indexPages++, new Uint8Array(piece.buffer));
    }
    return {
      entries: this.entries,
      tombstones: this.tombstones,
      blocks: this.blocks,
      bloomPages: this.bloomPages,
      indexPages,
      bytes: this.bytes,
      firsts,
      last: this.entries === 0 ? -1 : composite(this.lastKeyGroup, this.lastHash),
    };
  }

  /** Cuts the block before this entry when it is full: at a change of (keyGroup, hash) once past the target, always before a page overflows. */
  private before(keyGroup: number, hash: number, maxEntryBytes: number): void {
    const b = this.block;
    if (b.count > 0) {
      const sameHash = keyGroup === this.lastKeyGroup && hash === this.lastHash;
      if (
        b.count >= BLOCK_MAX_ENTRIES ||
        b.sizeWith(1, maxEntryBytes) > MAX_PAGE_BYTES ||
        (!sameHash && b.sizeWith(0, 0) >= this.targetBlockBytes)
      ) {
        this.endBlock();
      }
    }
    if (this.block.count === 0) this.blockFirst = composite(keyGroup, hash);
    this.lastKeyGroup = keyGroup;
    this.lastHash = hash;
  }

  private after(stateId: number, hash: number, tombstone: boolean): void {
    this.entries++;
    if (tombstone) this.tombstones++;
    bloomProbe(stateId, hash, this.probe);
    if (this.probeCount * 2 + 2 > this.probes.length) {
      const next = new Uint32Array(this.probes.length * 2);
      next.set(this.probes);
      this.probes = next;
    }
    this.probes[this.probeCount * 2] = this.probe.h1;
    this.probes[this.probeCount * 2 + 1] = this.probe.h2;
    this.probeCount++;
  }

  private endBlock(): void {
    if (this.blocks === this.firsts.length) {
      const next = new Float64Array(this.firsts.length * 2);
      next.set(this.firsts);
      this.firsts = next;
    }
    this.firsts[this.blocks] = this.blockFirst;
    this.emit(PAGE_BLOCK, this.blocks++, this.block.finish());
    if (this.blocks % BLOCKS_PER_BLOOM === 0) this.endBloom();
  }

  private endBloom(): void {
    const filter = bloomCreate(this.probeCount);
    const p = this.probe;
    for (let i = 0; i < this.probeCount; i++) {
      p.h1 = this.probes[2 * i];
      p.h2 = this.probes[2 * i + 1];
      bloomAdd(filter, p);
    }
    this.probeCount = 0;
    this.emit(PAGE_BLOOM, this.bloomPages++, filter);
  }

  private emit(kind: RunPage["kind"], page: number, bytes: Uint8Array): void {
    this.bytes += bytes.length;
    this.pages.push({ kind, page, bytes });
  }
}
