/**
 * Everything floe exports for writing jobs: the DSL, state, time, windows,
 * joins, connectors and errors. No Durable Object classes, so it loads
 * anywhere (workerd, Node, a browser): the "floe" entry re-exports it for
 * both runtimes (src/index.ts in workerd, src/index.node.ts in Node).
 */
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
/** What the Durable Object classes' hooks are given: `Coordinator.beforeStart` a start request, `Subtask.beforeDeploy` a deployment. */
export type { StartRequest, SubtaskDeployment } from "./runtime/messages.js";
