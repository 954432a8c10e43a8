/**
 * When a throughput run is long enough, and its steady figure: the same
 * rules for floe and Flink, applied here to the per-second series both
 * engines report.
 *
 * A run is long enough after {@link MIN_RUN_SECONDS} seconds from its first
 * record and, with checkpoints on, {@link MIN_RUN_CHECKPOINTS} completed
 * checkpoints: shorter runs are mostly start-up and JIT warm-up, and a
 * checkpoint's cost only shows over many of them. A run by duration goes on
 * after that while its rate still changes: until the trend of its steady
 * window (below) is within {@link MAX_TREND}, or the harness's cap.
 *
 * The steady figure leaves out the warm-up and the last second:
 * - the last whole second is dropped (the input's end, or the stop);
 * - the reference is the median of the 3-second means that start in the
 *   second half of what remains (3-second means, so that a checkpoint's
 *   dip every second or two does not look like warm-up);
 * - the warm-up ends at the first second, from the second one on, whose
 *   3-second mean reaches 90% of the reference, and is at most half of the
 *   run (so a run of 10 s or more keeps a steady window of 5 s or more);
 * - `steady_events_per_s` is the median of the seconds after the warm-up
 *   (robust to a neighbour's burst on a shared machine);
 *   `steady_mean_events_per_s` is their mean, which keeps every
 *   checkpoint's dip in;
 * - `steady_trend` is the median of the window's second half over that of
 *   its first half, minus 1: a JIT still warming up shows as a rise. Beyond
 *   {@link MAX_TREND} either way, `steady_note` says the rate still changed;
 * - a run shorter than {@link MIN_RUN_SECONDS} has no steady figure, and
 *   `steady_note` says why.
 */

/** A throughput run lasts at least this long from its first record. */
export const MIN_RUN_SECONDS = 10;
/** With checkpoints on, a throughput run lasts until this many completed since its first record. */
export const MIN_RUN_CHECKPOINTS = 10;
/** The warm-up ends when a 3-second mean reaches this share of the reference. */
export const WARMUP_THRESHOLD = 0.9;
/**
 * A steady window whose halves differ by more than this is still changing.
 * Loose on purpose: on a shared machine a neighbour's burst moves a
 * half's median by 10–20%.
 */
export const MAX_TREND = 0.25;

/** Whether a run is long enough: from its first record, and enough checkpoints when they are on. */
export function longEnough(o: { sinceFirstRecordMs: number; checkpointsCompleted: number; checkpointsOn: boolean }, minSeconds = MIN_RUN_SECONDS): boolean {
  if (o.sinceFirstRecordMs < minSeconds * 1000) return false;
  return !o.checkpointsOn || o.checkpointsCompleted >= MIN_RUN_CHECKPOINTS;
}

/** Whether a run by duration may stop: long enough, and its per-second series no longer rising or falling. */
export function mayStop(o: { sinceFirstRecordMs: number; checkpointsCompleted: number; checkpointsOn: boolean; series: readonly number[] }, minSeconds = MIN_RUN_SECONDS): boolean {
  if (!longEnough(o, minSeconds)) return false;
  const t = steadyFigures(o.series).steady_trend;
  return t !== null && Math.abs(t) <= MAX_TREND;
}

/** The steady fields of a result line. */
export interface SteadyFigures {
  steady_events_per_s: number | null;
  steady_mean_events_per_s: number | null;
  /** Coefficient of variation of the steady seconds (standard deviation over mean). */
  steady_cv: number | null;
  /** The steady window, in whole seconds since the first record: [from, to). */
  steady_from_s: number | null;
  steady_to_s: number | null;
  /** The median of the window's second half over its first half's, minus 1. */
  steady_trend: number | null;
  /** Why there is no steady figure, when there is none. */
  steady_note?: string;
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** The first second that ends the warm-up (see the module's header). */
export function warmupSeconds(series: readonly number[]): number {
  if (series.length < 2) return series.length;
  const half = Math.floor(series.length / 2);
  const window = (i: number) => mean(series.slice(i, i + 3));
  const late: number[] = [];
  for (let i = half; i + 3 <= series.length; i++) late.push(window(i));
  const reference = late.length > 0 ? median(late) : median(series.slice(half));
  for (let i = 1; i < half; i++) if (window(i) >= WARMUP_THRESHOLD * reference) return i;
  return half;
}

/** The steady figures of a per-second series (events in each whole second since the first record). */
export function steadyFigures(series: readonly number[]): SteadyFigures {
  const none = (note: string): SteadyFigures => ({
    steady_events_per_s: null,
    steady_mean_events_per_s: null,
    steady_cv: null,
    steady_from_s: null,
    steady_to_s: null,
    steady_trend: null,
    steady_note: note,
  });
  if (series.length < MIN_RUN_SECONDS) return none(`the run lasted ${series.length} whole seconds, fewer than ${MIN_RUN_SECONDS}`);
  const body = series.slice(0, -1);
  const from = warmupSeconds(body);
  const steady = body.slice(from);
  const m = mean(steady);
  const sd = Math.sqrt(mean(steady.map((x) => (x - m) ** 2)));
  const half = Math.floor(steady.length / 2);
  const early = median(steady.slice(0, half));
  const trend = early > 0 ? Math.round((median(steady.slice(steady.length - half)) / early - 1) * 1000) / 1000 : null;
  return {
    steady_events_per_s: Math.round(median(steady)),
    steady_mean_events_per_s: Math.round(m),
    steady_cv: m > 0 ? Math.round((sd / m) * 1000) / 1000 : null,
    steady_from_s: from,
    steady_to_s: from + steady.length,
    steady_trend: trend,
    ...(trend !== null && Math.abs(trend) > MAX_TREND ? { steady_note: `the rate still changed: the window's second half ${trend > 0 ? "above" : "below"} its first by ${Math.round(Math.abs(trend) * 100)}%` } : {}),
  };
}
