// Type-checks the public API as a front-end developer would use it; resolved through
// the package's own `exports` (run `npm run build` first, then `npm run test:types`).

import { connect, frameTopic, QueryError, workflowStates } from 'clonewire';
import type { Change, Client, Inspection, StatusEvent, View, ViewData, WorkflowState } from 'clonewire';

export async function example(): Promise<void> {
  const client: Client = await connect('/ws', {
    reconnectBaseMs: 250,
    onStatus: (event: StatusEvent) => console.log(event.status, event.delayMs ?? 0),
    onWorkflow: (event) => console.log(event.workflow, event.state, event.schema?.collections.length),
    onError: (event) => console.warn(event.code, event.message),
  });

  const view: View = client.view(
    'tasks',
    'subscription { workflows(ids: ["demo"]) { taskProxies { name status } } }',
    (changes: Change[], self: View) => {
      for (const { workflow, topic, patch, time } of changes) {
        console.log(workflow, topic, Object.keys(patch), time?.toFixed(0), self.name);
      }
    },
  );
  const data: ViewData | null = view.data();
  const tasks = data?.workflows['demo']?.['taskProxies'] ?? {};
  console.log(Object.keys(tasks).length, view.query);

  try {
    view.setQuery('{ workflows { jobs } }');
  } catch (error) {
    if (error instanceof QueryError) console.log(error.line, error.column, error.detail);
  }

  const stop: () => void = client.on('workflow', (event) => {
    const state: WorkflowState = event.state;
    console.log(state);
  });
  stop();
  client.on('status', (event) => console.log(event.status satisfies 'connecting' | 'open' | 'reconnecting' | 'closed'));

  const report: Inspection = client.inspect();
  for (const topic of report.topics) {
    console.log(topic.workflow, topic.topic, topic.epoch, topic.seq, topic.hash, topic.verified);
  }
  console.log(report.query, report.views[0]?.query, report.counters.deltasByTopic['taskProxies']);
  console.log(report.url, report.urls.length, report.moves);
  const failover: Client = await connect(['ws://core-a:8080/ws', new URL('ws://core-b:8080/ws')]);
  failover.close();
  console.log(client.status, client.workflows()['demo']?.schema);

  const states: WorkflowState[] = workflowStates();
  const about = frameTopic('{"type":"delta"}');
  if (about) console.log(states.length, about.type satisfies 'delta' | 'snapshot', about.workflow, about.topic);

  view[Symbol.dispose]();
  view.close();
  client.free();
}

// @ts-expect-error: the query is required
void ((c: Client) => c.view('x'));
