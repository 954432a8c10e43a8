/**
 * The constants of the resident-memory measurement, shared by its jobs
 * (bench/jobs.ts `benchRssJobs`, in the Worker bundle) and its script
 * (scripts/measure-rss.ts): the memory budget is a job option, so one job
 * per budget.
 */

/** The budgets (MiB) a "bench-rss-<MiB>" job exists for. */
export const RSS_BUDGETS_MIB = [4, 16, 64, 256] as const;

/** The job that runs under `mib` MiB. */
export function rssJobName(mib: number): string {
  return `bench-rss-${mib}`;
}
