// A task's latest job. Jobs are a topic of their own (`jobs`, keyed like
// `20260101T0000Z/foo/01`); a task proxy lists its jobs' keys (`jobs: {key: true}`)
// and counts them (`jobSubmits`). The latest is the listed job with the highest
// submit number.

/** Query text selecting the job fields the views show. */
export const JOB_FIELDS = 'jobs { submitNum state platform startedTime finishedTime }';

/** The latest job of a task proxy, looked up in the `jobs` topic, or null. */
export function latestJob(task, jobs) {
  let latest = null;
  for (const key of Object.keys(task?.jobs ?? {})) {
    const job = jobs?.[key];
    if (job && (!latest || (job.submitNum ?? 0) > (latest.submitNum ?? 0))) latest = job;
  }
  return latest;
}

/** "#02" for submit number 2; '' when there is none. */
export function submitLabel(job) {
  return job?.submitNum ? `#${String(job.submitNum).padStart(2, '0')}` : '';
}

/** The clock time of an ISO timestamp ("2026-01-01T06:12:40Z" → "06:12:40"). */
export function clockTime(iso) {
  if (typeof iso !== 'string') return '';
  const match = /T(\d\d:\d\d:\d\d)/.exec(iso);
  return match ? match[1] : iso;
}
