// A page as a front-end developer would write it: install `clonewire`, connect, show a view.
import { connect } from 'clonewire';

const relay = new URLSearchParams(location.search).get('relay') ?? '/ws';
const statusEl = document.getElementById('status');
const out = document.getElementById('out');

try {
  const client = await connect(relay, {
    onStatus: (event) => {
      statusEl.textContent = event.status;
    },
  });
  document.title = 'loaded';
  const query = 'subscription { workflows { taskProxies { status } } }';
  client.view('tasks', query, (changes, view) => {
    out.textContent = JSON.stringify(view.data());
    document.title = `changes:${changes.length}`;
  });
  window.clonewire = client;
} catch (error) {
  document.title = `error: ${error.message}`;
}
