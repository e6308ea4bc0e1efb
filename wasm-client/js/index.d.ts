// Types of the clonewire npm module.

/** Any JSON value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** A JSON object. */
export type JsonObject = { [key: string]: JsonValue };

/** The connection's state. */
export type Status = 'connecting' | 'open' | 'reconnecting' | 'closed';

/**
 * A workflow's state as the relay reports it; `workflowStates()` lists them at run time
 * (docs/protocol.md, Client link › Workflow states).
 */
export type WorkflowState = 'syncing' | 'live' | 'stale' | 'busy' | 'stopped' | 'removed';

/** A suite's schema: which objects are keyed collections (path patterns, `*` = any key). */
export interface Schema {
  collections: string[][];
}

/** The connection changed state. */
export interface StatusEvent {
  type: 'status';
  status: Status;
  /** For 'reconnecting': milliseconds until the next attempt. */
  delayMs?: number;
}

/** A workflow's state (and schema) changed. */
export interface WorkflowEvent {
  type: 'workflow';
  workflow: string;
  state: WorkflowState;
  schema: Schema | null;
}

/** Something the page may want to show; the client carries on. */
export interface ErrorEvent {
  type: 'error';
  /** e.g. 'bad_query' (the relay refused the merged query) or 'resync_failed'. */
  code: string;
  message: string;
}

/** Events by kind, for `client.on(kind, listener)`. */
export interface ClientEvents {
  status: StatusEvent;
  workflow: WorkflowEvent;
  error: ErrorEvent;
}

/** One change to a view's data of one (workflow, topic). */
export interface Change {
  workflow: string;
  topic: string;
  /**
   * A JSON merge patch (RFC 7386) for `view.data().workflows[workflow][topic]`.
   * Read-only: views that select the same leaves of a message share this object.
   */
  readonly patch: JsonObject;
  /** The suite's publish time (ms since the Unix epoch), when known. */
  time?: number;
}

/** A view's data: projected topic values by workflow id, then topic. */
export interface ViewData {
  workflows: { [workflow: string]: { [topic: string]: JsonObject } };
}

/** Called once per relay message that changes the view. */
export type ChangeListener = (changes: Change[], view: View) => void;

/** Options of `connect`. */
export interface ConnectOptions {
  /** A WebSocket constructor (default: `globalThis.WebSocket`; in Node, the `ws` package's). */
  WebSocket?: unknown;
  /** Where the wasm comes from (default: next to this module). */
  wasm?: URL | string | Request | Response | BufferSource | WebAssembly.Module;
  /** First reconnect delay in ms (default 500); delays double up to `reconnectMaxMs`. */
  reconnectBaseMs?: number;
  /** Longest reconnect delay in ms (default 30000). */
  reconnectMaxMs?: number;
  /**
   * Ask the relay for large frames (snapshots) deflated, and inflate them with
   * `DecompressionStream` before they are checked (default: true where the runtime
   * has `DecompressionStream('deflate-raw')`). `false`: text frames only.
   */
  compression?: boolean;
  onStatus?: (event: StatusEvent) => void;
  onWorkflow?: (event: WorkflowEvent) => void;
  onError?: (event: ErrorEvent) => void;
}

/** One view in `inspect()`. */
export interface ViewReport {
  id: number;
  name: string;
  /** The normalized query. */
  query: string;
}

/** One (workflow, topic) copy in `inspect()`. */
export interface TopicReport {
  workflow: string;
  topic: string;
  epoch: string;
  seq: number | null;
  /** The projection hash of the copy, 16 hex digits. */
  hash: string;
  /** False while the copy awaits a snapshot after a failed check. */
  verified: boolean;
}

/** Totals since the client was made. */
export interface Counters {
  messages: number;
  bytes: number;
  snapshots: number;
  deltas: number;
  deltasByTopic: { [topic: string]: number };
  resyncs: number;
  reconnects: number;
  chainBreaks: number;
  hashMismatches: number;
  ignored: number;
  badMessages: number;
  subscribes: number;
  notifications: number;
}

/** What `client.inspect()` returns. */
export interface Inspection {
  status: Status;
  /** The relay's name and version from its `hello`, once one said it. */
  relay: string | null;
  /** The URL in use: connected, or being tried. */
  url: string;
  /** Every URL given to `connect`, in the order they are tried. */
  urls: string[];
  /** How many times the client went on to the next URL (0 with one URL). */
  moves: number;
  views: ViewReport[];
  /** The merged query of every view (normalized). */
  query: string;
  /** The query the relay last confirmed. */
  subscribed: string | null;
  topics: TopicReport[];
  workflows: { workflow: string; state: WorkflowState; schema: Schema | null }[];
  counters: Counters;
}

/** A query the client cannot use. */
export class QueryError extends Error {
  readonly name: 'QueryError';
  /** 1-based line of the problem, when known. */
  readonly line: number | null;
  /** 1-based column of the problem, when known. */
  readonly column: number | null;
  /** The message without the position. */
  readonly detail: string;
}

/** A query over the client's store. */
export class View {
  private constructor();
  /** The name given to `client.view`. */
  readonly name: string;
  /** The normalized query ('' once closed). */
  readonly query: string;
  /** The current data; null once closed. */
  data(): ViewData | null;
  /** Replaces the query; throws a QueryError and keeps the old one when it is bad. */
  setQuery(query: string): void;
  /** Stops callbacks and frees the view. */
  close(): void;
  /** Same as close(). */
  free(): void;
  [Symbol.dispose](): void;
}

/** A connection to a relay and the one store behind all of its views. */
export class Client {
  private constructor();
  /** Opens a view; throws a QueryError for a bad query. */
  view(name: string, query: string, onChange?: ChangeListener): View;
  /** Listens to events; returns a function that stops listening. */
  on<K extends keyof ClientEvents>(kind: K, listener: (event: ClientEvents[K]) => void): () => void;
  /** The connection's state. */
  readonly status: Status;
  /** Every workflow heard of, with its state and schema. */
  workflows(): { [workflow: string]: { state: WorkflowState; schema: Schema | null } };
  /** Views, the merged query, every copy with epoch, seq, hash and verification, counters. */
  inspect(): Inspection;
  /** Closes the connection for good and frees the client. */
  close(): void;
  /** Same as close(). */
  free(): void;
  [Symbol.dispose](): void;
}

/**
 * Loads the wasm (once) and connects to a relay's WebSocket; with a list, to the first
 * and, whenever a connection is lost or refused, to the next (resuming there).
 */
export function connect(url: string | URL | (string | URL)[], options?: ConnectOptions): Promise<Client>;

/** Every workflow state the relay may report, in protocol order. Call once `connect()` has resolved. */
export function workflowStates(): WorkflowState[];

/** What a `delta` or `snapshot` frame is about. */
export interface FrameTopic {
  type: 'delta' | 'snapshot';
  workflow: string;
  topic: string;
}

/** Which (workflow, topic) a relay frame's text is about; null for any other frame. Call once `connect()` has resolved. */
export function frameTopic(text: string): FrameTopic | null;
