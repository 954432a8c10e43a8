/**
 * floe: exactly-once stream processing on Durable Objects.
 *
 * @example
 * import { createFloe, job, httpSource, tableSink } from "floe";
 * const floe = createFloe({ jobs: [clicks] });
 * export const { Coordinator, Subtask, StreamPartition, TablePartition } = floe;
 * export default floe.worker;
 */
import type { JobDefinition } from "./api/job.js";
import { createApp } from "./http/app.js";
import { Coordinator as CoordinatorBase } from "./runtime/coordinator/coordinator.js";
import type { FloeEnv } from "./runtime/env.js";
import { JobRegistry } from "./runtime/registry.js";
import { StreamPartition } from "./runtime/stream-partition.js";
import { Subtask as SubtaskBase } from "./runtime/subtask/subtask.js";
import { TablePartition } from "./runtime/table-partition.js";

export {
  job,
  JobDefinition,
  DataStream,
  KeyedStream,
  ConnectedStreams,
  KeyedConnectedStreams,
  BroadcastStream,
  BroadcastConnectedStream,
  KeyedBroadcastConnectedStream,
  type JobOptions,
} from "./api/job.js";
export { BROADCAST_STATE_MAX_BYTES, type BroadcastState, type ReadOnlyBroadcastState } from "./state/broadcast-state.js";
export {
  valueState,
  mapState,
  listState,
  stateTtl,
  StateTtlConfigBuilder,
  StateVisibility,
  UpdateType,
  type ValueState,
  type MapState,
  type ListState,
  type StateDescriptor,
  type ValueStateDescriptor,
  type MapStateDescriptor,
  type ListStateDescriptor,
  type StateOptions,
  type StateTtlConfig,
  type StateTtlUpdateType,
  type StateTtlVisibility,
} from "./api/state.js";
export type * from "./api/types.js";
export { WatermarkStrategy, END_OF_TIME_MS, type TimestampAssigner } from "./time/watermark-strategy.js";
export { WindowedStream } from "./api/windowed-stream.js";
export { OutputTag } from "./api/output-tag.js";
export { IntervalJoin, IntervalJoined } from "./api/interval-join.js";
export { JoinedStreams, WindowedJoin, type JoinFunction } from "./api/window-join.js";
export type { ProcessJoinContext, ProcessJoinFunction } from "./join/interval-join.js";
export { type DeadLetter, RejectedRecord } from "./api/dead-letter.js";
export {
  EventTimeSessionWindows,
  GlobalWindows,
  ProcessingTimeSessionWindows,
  SlidingEventTimeWindows,
  SlidingProcessingTimeWindows,
  TumblingEventTimeWindows,
  TumblingProcessingTimeWindows,
  type WindowAssigner,
} from "./window/assigners.js";
export { ContinuousEventTimeTrigger, CountTrigger, EventTimeTrigger, ProcessingTimeTrigger, PurgingTrigger, type Trigger, type TriggerResult } from "./window/triggers.js";
export type { TimeWindow, Window } from "./window/time-window.js";
export type { AggregateFunction, ProcessWindowContext, ProcessWindowFunction } from "./window/window-functions.js";
export type { CheckpointOptions } from "./api/checkpoint-options.js";
export { httpSource, type HttpSourceOptions } from "./connectors/sources/http-source.js";
export { generatorSource, type GeneratorOptions } from "./connectors/sources/generator-source.js";
export { tableSink, type TableRecord, type TableSinkOptions } from "./connectors/sinks/table-sink.js";
export { webhookSink, webhookIdempotencyKey, type WebhookSinkOptions } from "./connectors/sinks/webhook-sink.js";
export { fileSink, partKey, type FileSinkOptions } from "./connectors/sinks/file-sink.js";
export { TransactionalSinkWriter, type SinkPublisher } from "./connectors/sinks/two-phase-commit.js";
export { FloeError, JobDefinitionError } from "./errors.js";
export { AsyncDataStream, type AsyncInvoke } from "./api/async-data-stream.js";
export { MAX_CONCURRENT_REQUESTS, type AsyncFunction, type AsyncInvokeContext, type AsyncOperatorOptions } from "./api/async-function.js";
export { AsyncRetryStrategies, AsyncRetryStrategy, RetryPredicates } from "./async/retry-strategy.js";
export { AsyncTimeoutError } from "./async/async-wait-operator.js";
export type { FloeEnv } from "./runtime/env.js";

/** What {@link createFloe} takes. */
export interface FloeConfig {
  /** The jobs this Worker runs. */
  jobs: readonly JobDefinition[];
  /**
   * The path floe's API and dashboard live under: "/" (the default), or
   * e.g. "/floe" to sit beside an app of your own (`/floe/v1/jobs`, the
   * dashboard at `/floe`).
   */
  basePath?: string;
  /** Serve the dashboard (default true). */
  dashboard?: boolean;
}

/** The Worker's default export and its Durable Object classes, bound to a set of jobs. */
export function createFloe(config: FloeConfig) {
  const registry = new JobRegistry(config.jobs);
  const app = createApp(registry, { basePath: config.basePath, dashboard: config.dashboard });
  class Coordinator extends CoordinatorBase {
    protected readonly registry = registry;
  }
  class Subtask extends SubtaskBase {
    protected readonly registry = registry;
  }
  return {
    registry,
    /**
     * floe's Hono app, routes under the base path: mount it in an app of
     * your own (`yours.route("/", floe.app)`) or call `floe.app.fetch(request, env, ctx)`
     * from your own `fetch`.
     */
    app,
    worker: { fetch: app.fetch } satisfies ExportedHandler<FloeEnv>,
    Coordinator,
    Subtask,
    StreamPartition,
    TablePartition,
  };
}
