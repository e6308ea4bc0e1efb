// A task's latest job: the one with the highest submit number.

/** The latest job of a task entry (`jobs` keyed by job id), or null. */
export function latestJob(task) {
  let latest = null;
  for (const job of Object.values(task?.jobs ?? {})) {
    if (!latest || (job.submitNum ?? 0) > (latest.submitNum ?? 0)) latest = job;
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
