// The page's reading of the Cylc model (www/ids.js, www/views/jobs.js): the same for
// the demo's short references and a real workflow's full ids.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { relativeId } from '../../www/ids.js';
import { latestJob, submitLabel } from '../../www/views/jobs.js';

test('a reference names its topic key, written short or as a full Cylc id', () => {
  assert.equal(relativeId('~me/flow//20260101T0000Z/MODEL'), '20260101T0000Z/MODEL');
  assert.equal(relativeId('~me/a/b//$edge|1/a|1/b'), '$edge|1/a|1/b');
  assert.equal(relativeId('1/MODEL'), '1/MODEL');
  assert.equal(relativeId(undefined), undefined);
});

test("a task's latest job is its listed job with the highest submit number", () => {
  const jobs = {
    '1/foo/01': { submitNum: 1, state: 'failed' },
    '1/foo/02': { submitNum: 2, state: 'running', platform: 'hpc1' },
    '1/bar/03': { submitNum: 3, state: 'succeeded' },
  };
  const job = latestJob({ jobSubmits: 2, jobs: { '1/foo/01': true, '1/foo/02': true } }, jobs);
  assert.equal(job.state, 'running');
  assert.equal(submitLabel(job), '#02');
  // A job not (yet) in the jobs topic, or a task without jobs: nothing to show.
  assert.equal(latestJob({ jobs: { '1/baz/01': true } }, jobs), null);
  assert.equal(latestJob({ state: 'waiting' }, jobs), null);
});
