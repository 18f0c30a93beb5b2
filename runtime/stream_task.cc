#include "runtime/stream_task.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "runtime/dead_letter.h"
#include "runtime/expr/expression.h"
#include "runtime/operators/aggregate_operator.h"
#include "runtime/operators/basic_operators.h"
#include "runtime/operators/sinks.h"
#include "runtime/operators/join_operators.h"
#include "runtime/operators/process_function_registry.h"
#include "runtime/operators/process_operator.h"
#include "runtime/operators/document_source.h"
#include "runtime/operators/mllp_source.h"
#include "runtime/operators/nexmark_source.h"
#include "runtime/operators/patient_source.h"
#include "runtime/operators/sources.h"
#include "runtime/operators/window_operator.h"
#include "runtime/pending_work_pacer.h"
#include "runtime/row_codec.h"
#include "common/time_util.h"
#include "spdlog/spdlog.h"

namespace vstream {

class StreamTask::EmitterOutput : public Output {
 public:
  explicit EmitterOutput(std::unique_ptr<RecordEmitter> emitter) : emitter_(std::move(emitter)) {}
  void Push(RowBatch& batch) override { ok_ = ok_ && emitter_->Emit(batch); }
  void Finish() override { ok_ = ok_ && emitter_->Finish(); }
  void PushWatermark(int64_t watermark) override { ok_ = ok_ && emitter_->EmitWatermark(watermark); }
  void PushIdle() override { ok_ = ok_ && emitter_->EmitIdle(); }
  void PushLatencyMarker(int64_t created_us) override { emitter_->MarkLatency(created_us); }
  void PushBarrier(int64_t checkpoint_id, const BarrierOptions& options, RecordEmitter::Overtaken* overtaken) {
    ok_ = ok_ && emitter_->EmitBarrier(checkpoint_id, options, overtaken);
  }
  bool WaitForRoom(std::chrono::milliseconds max_wait) { return !ok_ || emitter_->WaitForRoom(max_wait); }
  bool SettleBarrier(int64_t checkpoint_id, int64_t now_ms, RecordEmitter::Overtaken* overtaken) {
    return emitter_->SettleBarrier(checkpoint_id, now_ms, overtaken);
  }
  void Restore(int subpartition, NetworkBuffer buffer) {
    ok_ = ok_ && emitter_->Restore(subpartition, std::move(buffer));
  }
  bool Flush() { return ok_ = ok_ && emitter_->Flush(); }
  bool ok() const { return ok_; }

 private:
  std::unique_ptr<RecordEmitter> emitter_;
  bool ok_ = true;
};

namespace {

class NullOutput : public Output {
 public:
  void Push(RowBatch&) override {}
  void Finish() override {}
  void PushWatermark(int64_t) override {}
};

PartitionMode ModeOf(proto::Partitioning p) {
  switch (p) {
    case proto::HASH: return PartitionMode::kHash;
    case proto::REBALANCE: return PartitionMode::kRebalance;
    case proto::BROADCAST: return PartitionMode::kBroadcast;
    default: return PartitionMode::kForward;
  }
}

absl::StatusOr<Expression> CompileExpr(const std::string& text, const Schema& schema,
                                       const std::string& vertex) {
  auto e = Expression::Compile(text, schema);
  if (!e.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("operator '", vertex, "': expression '", text, "': ", e.status().message()));
  }
  return e;
}

absl::StatusOr<std::unique_ptr<StreamOperator>> CreateOperator(const proto::JobVertex& v,
                                                               OperatorCounters& counters) {
  const Schema in = Schema::FromProto(v.input_schema());
  const Schema out = Schema::FromProto(v.output_schema());
  const auto& op = v.op();
  switch (op.kind_case()) {
    case proto::OperatorSpec::kSource: {
      std::unique_ptr<SourceOperator> source;
      if (op.source().connector() == "generator") {
        source = std::make_unique<GeneratorSource>(counters, out, op.source());
      } else if (op.source().connector() == "file" &&
                 (op.source().format() == "hl7v2" || op.source().format() == "fhir")) {
        source = std::make_unique<DocumentFileSource>(counters, out, op.source());
      } else if (op.source().connector() == "file") {
        source = std::make_unique<FileSource>(counters, out, op.source());
      } else if (op.source().connector() == "mllp") {
        source = std::make_unique<MllpSource>(counters, out, op.source());
      } else if (op.source().connector() == "patients") {
        const proto::SourceSpec& src = op.source();
        PatientOptions options;
        options.patients = src.patients().patients();
        options.seed = src.seed();
        options.interval_ms = src.patients().interval_ms();
        options.count = src.count();
        options.speed = src.patients().speed();
        options.start_ms = src.patients().start_ms();
        options.deterioration_rate = src.patients().deterioration_rate();
        options.sepsis_fraction = src.patients().sepsis_fraction();
        options.missing = src.patients().missing();
        options.duplicates = src.patients().duplicates();
        options.late = src.patients().late();
        if (!src.format().empty()) {
          ASSIGN_OR_RETURN(options.format, ParsePatientFormat(src.format()));
        }
        source = std::make_unique<PatientSource>(counters, out, src, options);
      } else if (op.source().connector() == "nexmark") {
        const proto::SourceSpec& src = op.source();
        const proto::NexmarkSpec& nx = src.nexmark();
        NexmarkOptions options;
        options.count = src.count();
        options.seed = src.seed();
        options.rate = src.rate();
        options.event_rate = nx.event_rate();
        options.base_time_ms = nx.base_time_ms();
        options.num_active_people = nx.num_active_people();
        options.num_in_flight_auctions = nx.num_in_flight_auctions();
        options.hot_auction_ratio = nx.hot_auction_ratio();
        options.hot_sellers_ratio = nx.hot_sellers_ratio();
        options.hot_bidders_ratio = nx.hot_bidders_ratio();
        options.avg_person_byte_size = nx.avg_person_byte_size();
        options.avg_auction_byte_size = nx.avg_auction_byte_size();
        options.avg_bid_byte_size = nx.avg_bid_byte_size();
        source = std::make_unique<NexmarkSource>(counters, out, src, options);
      } else {
        return absl::InvalidArgumentError(absl::StrCat("unknown source connector ", op.source().connector()));
      }
      if (op.source().has_event_time()) source->set_event_time(op.source().event_time());
      return source;
    }
    case proto::OperatorSpec::kFilter: {
      ASSIGN_OR_RETURN(Expression pred, CompileExpr(op.filter().where(), in, v.name()));
      return std::make_unique<FilterOperator>(counters, std::move(pred));
    }
    case proto::OperatorSpec::kMap: {
      std::vector<Expression> exprs;
      for (const auto& p : op.map().select()) {
        ASSIGN_OR_RETURN(Expression e, CompileExpr(p.expr(), in, v.name()));
        exprs.push_back(std::move(e));
      }
      return std::make_unique<MapOperator>(counters, std::move(exprs));
    }
    case proto::OperatorSpec::kUnion:
      return std::make_unique<UnionOperator>(counters);
    case proto::OperatorSpec::kAggregate: {
      std::vector<int> keys;
      for (const auto& k : op.aggregate().key_by()) {
        int idx = in.IndexOf(k);
        if (idx < 0) return absl::InvalidArgumentError(absl::StrCat("unknown key field ", k));
        keys.push_back(idx);
      }
      std::vector<proto::AggregateCall> calls(op.aggregate().aggregates().begin(), op.aggregate().aggregates().end());
      int retract_field = -1;
      if (!op.aggregate().retract_field().empty()) {
        retract_field = in.IndexOf(op.aggregate().retract_field());
        if (retract_field < 0) {
          return absl::InvalidArgumentError(absl::StrCat("unknown retract field ", op.aggregate().retract_field()));
        }
      }
      return std::make_unique<AggregateOperator>(counters, in, std::move(keys), std::move(calls),
                                                 op.aggregate().changelog(), retract_field);
    }
    case proto::OperatorSpec::kWindow:
      return std::make_unique<WindowOperator>(counters, in, op.window());
    case proto::OperatorSpec::kProcess: {
      const ProcessFunctionRegistry& registry = ProcessFunctionRegistry::Global();
      if (!registry.Contains(op.process().function())) {
        return absl::NotFoundError(absl::StrCat(
            "operator '", v.name(), "': process function '", op.process().function(),
            "' is not registered in this TaskManager (it has ", absl::StrJoin(registry.Names(), ", "),
            "); run a TaskManager built with it (see examples/custom_taskmanager)"));
      }
      auto fn = registry.Create(op.process().function(), ProcessParams::FromProto(op.process().params()));
      if (!fn.ok()) {
        return absl::Status(fn.status().code(), absl::StrCat("operator '", v.name(), "': process function '",
                                                             op.process().function(), "': ", fn.status().message()));
      }
      return std::make_unique<ProcessOperator>(counters, in, out, op.process(), std::move(*fn));
    }
    case proto::OperatorSpec::kIntervalJoin:
      return std::make_unique<IntervalJoinOperator>(counters, in, Schema::FromProto(v.second_input_schema()),
                                                    op.interval_join());
    case proto::OperatorSpec::kBroadcastJoin:
      return std::make_unique<BroadcastJoinOperator>(counters, in, Schema::FromProto(v.second_input_schema()),
                                                     op.broadcast_join());
    case proto::OperatorSpec::kSink: {
      const auto& s = op.sink();
      if (s.max_rate() > 0) counters.sink_max_rate = s.max_rate();
      if (s.connector() == "file") return std::make_unique<FileSink>(counters, in, s.path(), s.format());
      if (s.connector() == "stdout") {
        return std::make_unique<StdoutSink>(counters, in, s.format().empty() ? "jsonl" : s.format());
      }
      if (s.connector() == "blackhole") return std::make_unique<BlackholeSink>(counters);
      return absl::InvalidArgumentError(absl::StrCat("unknown sink connector ", s.connector()));
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat("vertex ", v.name(), " has no operator"));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<StreamTask>> StreamTask::Create(
    const proto::TaskDeploymentDescriptor& tdd, const StreamTaskEnv& env) {
  std::unique_ptr<StreamTask> task(new StreamTask());
  RETURN_IF_ERROR(task->Build(tdd, env));
  return task;
}

StreamTask::~StreamTask() {
  if (gate_) gate_->Close();
  if (aligned_) aligned_->done.store(true, std::memory_order_release);
}

absl::Status StreamTask::Build(const proto::TaskDeploymentDescriptor& tdd, const StreamTaskEnv& env) {
  tdd_ = tdd;
  partition_manager_ = env.partitions;
  buffer_timeout_ms_ = tdd.buffer_timeout_ms() > 0 ? tdd.buffer_timeout_ms() : 5;
  latency_marker_interval_us_ = tdd.graph().latency_marker_interval_ms() * 1000;
  const proto::JobGraph& graph = tdd.graph();
  auto vertex = [&](int id) -> const proto::JobVertex& { return graph.vertices(id); };

  // Operators of the chain, in topological order (head first); wired below.
  for (int vid : tdd.chain()) {
    const proto::JobVertex& v = vertex(vid);
    counters_.push_back(std::make_unique<OperatorCounters>());
    counters_.back()->vertex_id = vid;
    ASSIGN_OR_RETURN(auto op, CreateOperator(v, *counters_.back()));
    operators_.push_back(std::move(op));
  }

  // Network outputs: the edges leaving the chain, grouped by source vertex.
  std::map<std::pair<int, std::string>, FanOutOutput*> outs;  // (vertex, side output)
  for (const auto& od : tdd.outputs()) {
    const proto::JobEdge& edge = graph.edges(od.edge_index());
    auto partition = std::make_shared<ResultPartition>(
        od.partition_id(), od.num_subpartitions(), env.send_queue_buffers,
        [pm = env.partitions](const std::string& id) { pm->Unregister(id); });
    env.partitions->Register(partition);
    partitions_.push_back(partition);
    Schema schema = EmittedSchema(graph, edge);
    std::vector<int> keys(edge.key_fields().begin(), edge.key_fields().end());
    std::vector<int> projection(edge.projection().begin(), edge.projection().end());
    for (int f : projection) {
      if (f < 0 || static_cast<size_t>(f) >= schema.size()) {
        return absl::InvalidArgumentError(absl::StrCat("edge ", edge.source(), " -> ", edge.target(), ": projected field ",
                                                       f, " is not a field of ", schema.DebugString()));
      }
    }
    emitters_.push_back(std::make_unique<EmitterOutput>(std::make_unique<RecordEmitter>(
        partition, std::move(schema), ModeOf(edge.partitioning()), std::move(keys),
        graph.max_parallelism() > 0 ? graph.max_parallelism() : 128, tdd.subtask_index(), std::move(projection))));
    auto key = std::make_pair(edge.source(), edge.side_output());
    if (!outs.count(key)) {
      auto fan = std::make_unique<FanOutOutput>();
      outs[key] = fan.get();
      fanouts_.push_back(std::move(fan));
    }
    outs[key]->Add(emitters_.back().get());
  }
  fanouts_.push_back(std::make_unique<NullOutput>());
  Output* null_out = fanouts_.back().get();
  // Each operator's main output: the operators chained to it and the
  // network edges leaving it. Each operator but the head has one input, an
  // operator before it, except a union of branches of the chain, which
  // takes each through an input of its own (UnionOperator).
  std::map<int, size_t> index_of;  // vertex id -> chain index
  for (int i = 0; i < tdd.chain_size(); ++i) index_of[tdd.chain(i)] = i;
  std::vector<std::pair<size_t, size_t>> links;  // (from, to) chain indexes
  std::vector<int> chained_inputs(operators_.size(), 0);
  for (const auto& edge : graph.edges()) {
    auto from = index_of.find(edge.source());
    auto to = index_of.find(edge.target());
    if (from == index_of.end() || to == index_of.end()) continue;
    if (to->second <= from->second || to->second == 0) return absl::InternalError("a chain out of order");
    links.emplace_back(from->second, to->second);
    ++chained_inputs[to->second];
  }
  // Per operator, the Outputs of the operators chained to it.
  std::vector<std::vector<std::pair<StreamOperator*, Output*>>> chained(operators_.size());
  for (const auto& [from, to] : links) {
    StreamOperator* op = operators_[to].get();
    Output* input = op;
    if (chained_inputs[to] > 1) {
      auto* u = dynamic_cast<UnionOperator*>(op);
      if (u == nullptr) {
        return absl::InternalError(absl::StrCat("operator '", vertex(tdd.chain(to)).name(), "' has ",
                                                chained_inputs[to], " inputs in its chain; only a union may"));
      }
      input = u->AddChainedInput();
    }
    chained[from].emplace_back(op, input);
  }
  for (size_t i = 0; i < operators_.size(); ++i) {
    auto net = outs.find({tdd.chain(i), ""});
    Output* network = net != outs.end() ? net->second : nullptr;
    if (chained[i].empty()) {
      operators_[i]->set_output(network != nullptr ? network : null_out);
    } else if (chained[i].size() == 1 && network == nullptr) {
      operators_[i]->set_output(chained[i][0].second);
    } else {
      auto fan = std::make_unique<ChainFanOutOutput>();
      if (network != nullptr) fan->AddReader(network);
      for (const auto& [op, input] : chained[i]) fan->AddOperator(op, input);
      operators_[i]->set_output(fan.get());
      fanouts_.push_back(std::move(fan));
    }
  }
  // Side outputs: dead letters of a source or process function, late
  // records of a window.
  for (size_t i = 0; i < operators_.size(); ++i) {
    for (const char* side : {kDeadLetterOutput, kLateOutput}) {
      auto it = outs.find({tdd.chain(i), side});
      if (it == outs.end()) continue;
      if (auto* src = dynamic_cast<SourceOperator*>(operators_[i].get())) src->set_dead_letter_output(it->second);
      if (auto* win = dynamic_cast<WindowOperator*>(operators_[i].get())) win->set_late_output(it->second);
      auto* proc = dynamic_cast<ProcessOperator*>(operators_[i].get());
      if (proc != nullptr && std::string_view(side) == kDeadLetterOutput) proc->set_dead_letter_output(it->second);
      side_outputs_.push_back(it->second);
    }
  }

  // A throttled sink (max_rate) paces the task's input: the rest of the
  // chain and everything upstream is backpressured. (Two in one chain: the
  // slower one.)
  double sink_rate = 0;
  for (const auto& c : counters_) {
    if (c->sink_max_rate > 0 && (sink_rate == 0 || c->sink_max_rate < sink_rate)) sink_rate = c->sink_max_rate;
  }
  if (sink_rate > 0) sink_limiter_ = std::make_unique<RateLimiter>(sink_rate);

  // Watermark alignment: a source whose event time names a group reports
  // its watermark and pauses while it is too far ahead of the group's
  // (runtime/aligned_source_registry.h).
  if (auto* src = dynamic_cast<SourceOperator*>(operators_[0].get()); src != nullptr && env.aligned_sources != nullptr) {
    const proto::EventTimeSpec* et = src->event_time();
    if (et != nullptr && !et->alignment_group().empty()) {
      aligned_ = std::make_shared<AlignedSource>();
      aligned_->job_id = tdd.job_id();
      aligned_->attempt = tdd.attempt();
      aligned_->group = et->alignment_group();
      aligned_->vertex_id = tdd.chain(0);
      aligned_->subtask = tdd.subtask_index();
      aligned_->max_drift_ms = et->alignment_max_drift_ms();
      aligned_->update_interval_ms = et->alignment_update_interval_ms();
      for (const proto::JobVertex& v : graph.vertices()) {
        if (v.op().has_source() && v.op().source().event_time().alignment_group() == aligned_->group) {
          aligned_->group_size += v.parallelism();
        }
      }
      env.aligned_sources->Register(aligned_);
    }
  }

  // Open the operators.
  for (size_t i = 0; i < operators_.size(); ++i) {
    const proto::JobVertex& v = vertex(tdd.chain(i));
    OperatorContext ctx;
    ctx.job_id = tdd.job_id();
    ctx.vertex_name = v.name();
    ctx.vertex_id = v.id();
    ctx.subtask_index = tdd.subtask_index();
    ctx.parallelism = tdd.parallelism();
    ctx.max_parallelism = graph.max_parallelism() > 0 ? graph.max_parallelism() : 128;
    ctx.key_group_fields = v.key_group_fields();
    ctx.data_dir = env.data_dir;
    ctx.state_resources = env.state_resources;
    if (v.op().has_aggregate()) ctx.state_ttl_ms = v.op().aggregate().state_ttl_ms();
    if (v.op().has_process()) ctx.state_ttl_ms = v.op().process().state_ttl_ms();
    ctx.state_dir = StateDir(env.data_dir, tdd, v.id());
    ctx.checkpointing = !tdd.checkpoint_storage().empty();
    ctx.checkpoint_dir = CheckpointStorage::LocalPath(tdd.checkpoint_storage());
    ctx.at_least_once = ctx.checkpointing && graph.checkpointing().mode() == proto::AT_LEAST_ONCE;
    const KeyGroupRange key_groups = KeyGroupRangeForSubtask(ctx.max_parallelism, ctx.parallelism, ctx.subtask_index);
    if (i == 0 && !tdd.checkpoint_storage().empty()) {
      if (env.checkpoint_responder == nullptr || env.snapshot_uploads == nullptr) {
        return absl::InternalError("a task with checkpoint storage needs a responder and an upload thread");
      }
      ASSIGN_OR_RETURN(std::unique_ptr<CheckpointStorage> storage, CheckpointStorage::Open(tdd.checkpoint_storage()));
      storage_ = std::move(storage);
      checkpoints_ = std::make_unique<TaskCheckpoints>(tdd.job_id(), tdd.task_id(), tdd.subtask_index(), key_groups,
                                                       storage_, env.checkpoint_responder, env.snapshot_uploads,
                                                       env.snapshot_copies);
    }
    // On a restore, this operator's part of the checkpoint: keyed state goes
    // into its state dir before it opens, its own state after. At another
    // parallelism the keyed state comes from every snapshot whose key
    // groups overlap this subtask's, and this subtask also takes the
    // operator state of subtasks that no longer exist (i >= parallelism,
    // i % parallelism == this one), as Flink's union redistribution.
    const proto::OperatorSnapshot* restored = nullptr;
    std::vector<const proto::OperatorSnapshot*> orphans;
    std::vector<proto::KeyedStateHandle> keyed;
    for (const auto& snap : tdd.restore().operators()) {
      if (snap.vertex_id() != v.id()) continue;
      if (snap.subtask_index() == tdd.subtask_index()) {
        restored = &snap;
      } else if (snap.subtask_index() >= tdd.parallelism() &&
                 snap.subtask_index() % tdd.parallelism() == tdd.subtask_index()) {
        orphans.push_back(&snap);
      }
      if (snap.has_keyed() && snap.keyed().key_group_start() <= key_groups.end &&
          snap.keyed().key_group_end() >= key_groups.start) {
        keyed.push_back(snap.keyed());
      }
    }
    if (restored == nullptr || !restored->finished()) finished_on_restore_ = false;
    if (i == 0 && restored != nullptr && restored->finished()) head_finished_on_restore_ = true;
    if (restored != nullptr && !restored->channel_state().empty()) {
      // An unaligned checkpoint's in-flight records (on the head's snapshot).
      if (i != 0) {
        // Taken when the operator headed a task of its own (by a version
        // that did not chain it): its channels are gone.
        return absl::InvalidArgumentError(absl::StrCat(
            "operator '", v.name(), "': checkpoint ", tdd.restore().checkpoint_id(),
            " holds in-flight records for it from the network, but it is chained into the task of '",
            vertex(tdd.chain(0)).name(), "' now; restore from a savepoint (always aligned) or an aligned checkpoint"));
      }
      if (!storage_) return absl::InvalidArgumentError("a restore without checkpoint storage");
      if (!tdd.restore().storage().empty() && !restore_storage_) {
        ASSIGN_OR_RETURN(restore_storage_, CheckpointStorage::Open(tdd.restore().storage()));
      }
      CheckpointStorage& from = restore_storage_ ? *restore_storage_ : *storage_;
      absl::StatusOr<std::string> bytes = from.Read(restored->channel_state());
      absl::StatusOr<ChannelState> parsed =
          bytes.ok() ? ChannelState::Parse(*bytes) : absl::StatusOr<ChannelState>(bytes.status());
      if (!parsed.ok()) {
        return absl::Status(parsed.status().code(),
                            absl::StrCat("operator '", v.name(), "': restoring the in-flight records of checkpoint ",
                                         tdd.restore().checkpoint_id(), ": ", parsed.status().message()));
      }
      restored_channels_ = std::move(*parsed);
    }
    auto restore_error = [&](const absl::Status& s) {
      return absl::Status(s.code(), absl::StrCat("operator '", v.name(), "': restoring checkpoint ",
                                                 tdd.restore().checkpoint_id(), ": ", s.message()));
    };
    // The same files as this subtask's own earlier snapshot: later
    // checkpoints may refer to them instead of uploading them again.
    const bool same_files = tdd.restore().storage().empty() && keyed.size() == 1 && restored != nullptr &&
                            restored->has_keyed() && restored->keyed().key_group_start() == key_groups.start &&
                            restored->keyed().key_group_end() == key_groups.end;
    if (!keyed.empty()) {
      if (!storage_) return absl::InvalidArgumentError("a restore without checkpoint storage");
      if (!tdd.restore().storage().empty() && !restore_storage_) {
        ASSIGN_OR_RETURN(restore_storage_, CheckpointStorage::Open(tdd.restore().storage()));
      }
      CheckpointStorage& from = restore_storage_ ? *restore_storage_ : *storage_;
      std::error_code ec;
      std::filesystem::remove_all(ctx.state_dir, ec);
      if (absl::Status s = RestoreKeyedState(from, keyed, key_groups, ctx.state_dir); !s.ok()) {
        return restore_error(s);
      }
      ctx.restored = true;
    }
    absl::Status s = operators_[i]->Open(ctx);
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat("operator '", v.name(), "': ", s.message()));
    if (operators_[i]->needs_final_checkpoint()) needs_final_checkpoint_ = true;
    // A finished operator's snapshot has no state: it made all it would.
    if (restored != nullptr && !restored->finished()) {
      if (s = operators_[i]->RestoreOperatorState(restored->operator_state()); !s.ok()) return restore_error(s);
    }
    for (const proto::OperatorSnapshot* orphan : orphans) {
      if (orphan->finished()) continue;
      if (s = operators_[i]->RestoreOperatorState(orphan->operator_state()); !s.ok()) return restore_error(s);
    }
    if (checkpoints_) {
      checkpoints_->AddOperator(v.id(), operators_[i].get(), ctx.state_dir);
      if (same_files) checkpoints_->AddRestored(v.id(), restored->keyed());
    }
  }
  if (finished_on_restore_) {
    // Everything in this task had finished (its final checkpoint included):
    // it waits for no final checkpoint, and should a checkpoint still reach
    // it before it reports FINISHED, its snapshots say finished again
    // instead of a source's unrestored start position.
    needs_final_checkpoint_ = false;
    if (checkpoints_) checkpoints_->MarkFinished();
  }

  // Input gate over every channel of every input edge.
  if (!tdd.inputs().empty()) {
    const proto::JobVertex& head_vertex = vertex(tdd.chain(0));
    input_schemas_[0] = Schema::FromProto(head_vertex.input_schema());
    input_schemas_[1] = Schema::FromProto(head_vertex.second_input_schema());
    std::vector<std::unique_ptr<InputChannel>> channels;
    for (const auto& gate : tdd.inputs()) {
      const int input = graph.edges(gate.edge_index()).target_input() == 1 ? 1 : 0;
      for (const auto& ch : gate.channels()) {
        channel_input_.push_back(input);
        if (ch.producer_address() == env.own_address) {
          channels.push_back(std::make_unique<LocalInputChannel>(*env.partitions, ch.partition_id(),
                                                                 ch.subpartition()));
        } else {
          channels.push_back(std::make_unique<RemoteInputChannel>(
              env.network, env.channels->Get(ch.producer_address()), ch.partition_id(), ch.subpartition(),
              env.receive_credits));
        }
      }
    }
    gate_ = std::make_unique<InputGate>(std::move(channels));
    valve_ = std::make_unique<WatermarkValve>(channel_input_.size());
    barriers_ = std::make_unique<CheckpointBarriers>(
        static_cast<int>(channel_input_.size()),
        graph.checkpointing().mode() == proto::AT_LEAST_ONCE ? CheckpointMode::kAtLeastOnce
                                                             : CheckpointMode::kExactlyOnce,
        gate_.get());
  }
  for (const auto& op : operators_) wants_processing_time_ = wants_processing_time_ || op->wants_processing_time();
  if (!tdd.checkpoint_storage().empty()) checkpoint_interval_ms_ = graph.checkpointing().interval_ms();
  responsive_ = !tdd.checkpoint_storage().empty() && graph.checkpointing().mode() != proto::AT_LEAST_ONCE &&
                (graph.checkpointing().unaligned() || graph.checkpointing().aligned_timeout_ms() > 0);
  return absl::OkStatus();
}

absl::Status StreamTask::CheckOperators() const {
  for (size_t i = 0; i < operators_.size(); ++i) {
    if (!operators_[i]->status().ok()) {
      const auto& s = operators_[i]->status();
      return absl::Status(s.code(), absl::StrCat("operator '", tdd_.graph().vertices(tdd_.chain(i)).name(),
                                                 "': ", s.message()));
    }
  }
  for (const auto& e : emitters_) {
    if (!e->ok()) return absl::CancelledError("output partition released");
  }
  return absl::OkStatus();
}

void StreamTask::Throttle(size_t n) {
  if (!sink_limiter_) return;
  while (n > 0 && !cancelled_) n -= sink_limiter_->Acquire(n);
}

bool StreamTask::FlushAll() {
  bool ok = true;
  for (auto& e : emitters_) ok = e->Flush() && ok;
  return ok;
}

void StreamTask::Cancel() {
  cancelled_ = true;
  {
    std::lock_guard<std::mutex> lock(requests_mu_);
    requests_cv_.notify_all();
  }
  if (gate_) gate_->Cancel();
  for (auto& p : partitions_) p->Release();
}

void StreamTask::PushWatermark(std::optional<int64_t> watermark) {
  if (watermark) operators_[0]->PushWatermark(*watermark);
}

void StreamTask::OnCheckpointBarriers(const CheckpointBarriers::Result& result, int channel,
                                      const NetworkBuffer* barrier) {
  if (result.aborted != 0) {
    spdlog::info("task {}: checkpoint {} overtaken by a newer one before its barriers aligned", tdd_.task_id(),
                 result.aborted);
    if (channel_state_.checkpoint_id == result.aborted) {
      if (checkpoints_) checkpoints_->AbandonChannelState(result.aborted, "a newer checkpoint's barrier came first");
      channel_state_ = PendingChannelState{};
    }
  }
  // Aligned: barrier n has arrived on every input, and the chain has seen
  // exactly the records before it. Unaligned: the first barrier n.
  if (result.snapshot != 0) {
    const int64_t alignment_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - alignment_start_)
            .count();
    PerformCheckpoint(result.snapshot, alignment_ms, result.forward);
  }
  // An unaligned barrier that overtook buffers queued here: their records
  // come after the snapshot but belong before the barrier.
  if (barrier != nullptr && barrier->unaligned && barrier->overtaken > 0 &&
      channel_state_.checkpoint_id == barrier->checkpoint_id) {
    std::vector<NetworkBuffer> copies;
    gate_->CopyQueuedRecords(channel, barrier->overtaken, &copies);
    for (NetworkBuffer& b : copies) {
      channel_state_.state.AddInput(channel_input_[channel], b.num_records, std::move(b.data));
    }
  }
  if (result.channel_state_done != 0 && channel_state_.checkpoint_id == result.channel_state_done) {
    channel_state_.inputs_done = true;
  }
  MaybeFinishChannelState();
}

void StreamTask::PerformCheckpoint(int64_t checkpoint_id, int64_t alignment_ms, const BarrierOptions& forward) {
  last_triggered_ = std::max(last_triggered_, checkpoint_id);
  // Unaligned, or aligned with a deadline: the snapshot has channel state,
  // complete once the barriers have arrived (inputs) and settled (outputs).
  const bool collect = checkpoints_ != nullptr && !input_ended_ &&
                       (forward.unaligned || forward.aligned_deadline_ms > 0);
  if (collect) {
    channel_state_ = PendingChannelState{};
    channel_state_.checkpoint_id = checkpoint_id;
    channel_state_.unaligned = forward.unaligned;
    // Unaligned with inputs: done when the barrier handler says so
    // (OnCheckpointBarriers), after the overtaken buffers were copied.
    channel_state_.inputs_done = !forward.unaligned || gate_ == nullptr;
  }
  if (!gate_) {
    // A source's watermark held back by watermark_interval goes before the
    // barrier, as the records it follows do.
    if (auto* source = dynamic_cast<SourceOperator*>(operators_[0].get())) source->EmitPendingWatermark();
  }
  if (checkpoints_) {
    checkpoints_->Snapshot(checkpoint_id, alignment_ms, collect);
    if (checkpoint_interval_ms_ > 0) {
      preflush_at_ms_ = MonotonicMillis() + checkpoint_interval_ms_ - checkpoint_interval_ms_ / 8;
    }
  }
  if (collect && forward.unaligned && carry_ != nullptr && carry_->num_records > 0) {
    // Taken in the middle of a buffer: its rest is after the snapshot,
    // before its channel's barrier.
    channel_state_.state.AddInput(carry_->input, carry_->num_records, std::string(carry_->data));
  }
  if (input_ended_) {
    // After the end of input (the final checkpoint): downstream tasks got
    // the end of their input already and are triggered themselves.
    if (final_checkpoint_ == 0) final_checkpoint_ = checkpoint_id;
    return;
  }
  RecordEmitter::Overtaken overtaken;
  for (size_t e = 0; e < emitters_.size(); ++e) {
    overtaken.clear();
    emitters_[e]->PushBarrier(checkpoint_id, forward, &overtaken);
    if (!collect) continue;
    for (auto& [sub, b] : overtaken) {
      channel_state_.state.AddOutput(static_cast<int>(e), sub, b.num_records, std::move(b.data));
    }
  }
  if (collect && !forward.unaligned && forward.aligned_deadline_ms > 0) channel_state_.outputs_settled = false;
  // The caller calls MaybeFinishChannelState.
}

void StreamTask::MaybeFinishChannelState() {
  PendingChannelState& p = channel_state_;
  if (p.checkpoint_id == 0) return;
  if (!p.outputs_settled) {
    const int64_t now = NowMillis();
    bool settled = true;
    RecordEmitter::Overtaken overtaken;
    for (size_t e = 0; e < emitters_.size(); ++e) {
      overtaken.clear();
      settled = emitters_[e]->SettleBarrier(p.checkpoint_id, now, &overtaken) && settled;
      for (auto& [sub, b] : overtaken) p.state.AddOutput(static_cast<int>(e), sub, b.num_records, std::move(b.data));
    }
    p.outputs_settled = settled;
  }
  if (!p.inputs_done || !p.outputs_settled) return;
  if (checkpoints_) checkpoints_->SetChannelState(p.checkpoint_id, std::move(p.state), p.unaligned);
  p = PendingChannelState{};
}

bool StreamTask::OutputsHaveRoom(std::chrono::milliseconds max_wait) {
  for (auto& e : emitters_) {
    if (!e->WaitForRoom(max_wait)) return false;
  }
  return true;
}

void StreamTask::AwaitConsumers() {
  const auto deadline = std::chrono::steady_clock::now() + kConsumersWait;
  for (auto& p : partitions_) {
    for (int i = 0; i < p->num_subpartitions(); ++i) {
      while (!p->subpartition(i).WaitForReader(std::chrono::milliseconds(5))) {
        if (cancelled_) return;
        if (std::chrono::steady_clock::now() >= deadline) {
          spdlog::warn("task {}: no consumer read subpartition {} of {} in {} s; going on without waiting",
                       tdd_.task_id(), i, p->id(), kConsumersWait.count());
          return;
        }
      }
    }
  }
}

void StreamTask::AwaitOutputRoom(const Carry* carry) {
  // Short waits: a checkpoint trigger or an unaligned barrier is taken
  // within one of them.
  constexpr auto kSlice = std::chrono::milliseconds(5);
  while (!cancelled_) {
    if (carry != nullptr) {
      const int64_t now = NowMillis();
      gate_->ConvertOverdueBarriers(now);
      if (gate_->priority_pending()) TakePriorityBarriers(*carry);
      if (barriers_->deadline_ms() > 0 && now >= barriers_->deadline_ms()) {
        carry_ = carry;
        OnCheckpointBarriers(barriers_->CheckTimeout(now));
        carry_ = nullptr;
      }
    } else {
      ProcessCheckpointRequests();
    }
    MaybeFinishChannelState();
    if (OutputsHaveRoom(kSlice)) return;
  }
}

absl::Status StreamTask::PushRecords(int input, std::string_view data, int num_records, RowBatch& batch) {
  const Schema& schema = input_schemas_[input];
  StreamOperator* head = operators_[0].get();
  size_t pos = 0;
  const bool between_batches_check = responsive_ && gate_ && !replaying_;
  for (int r = 0; r < num_records; ++r) {
    if (between_batches_check && batch.empty()) {
      // Before each batch: wait for room at the outputs rather than block
      // in the middle of one, and take unaligned barriers that came; the
      // rest of this buffer (this batch on) is then in flight.
      const Carry rest{input, data.substr(pos), num_records - r};
      AwaitOutputRoom(&rest);
    }
    if (!DecodeRow(schema, data, &pos, &batch.Append())) return absl::DataLossError("corrupt network buffer");
    if (batch.full() || (sink_limiter_ && batch.size() >= 64)) {
      Throttle(batch.size());
      head->PushInput(input, batch);
      batch.Clear();
    }
  }
  if (!batch.empty()) {
    Throttle(batch.size());
    head->PushInput(input, batch);
    batch.Clear();
  }
  return absl::OkStatus();
}

void StreamTask::OnBarrierBuffer(int channel, const NetworkBuffer& barrier) {
  if (barriers_->pending() == 0) alignment_start_ = std::chrono::steady_clock::now();
  const BarrierOptions options{.unaligned = barrier.unaligned, .aligned_deadline_ms = barrier.aligned_deadline_ms};
  OnCheckpointBarriers(barriers_->OnBarrier(channel, barrier.checkpoint_id, options, NowMillis()), channel, &barrier);
}

void StreamTask::TakePriorityBarriers(const Carry& carry) {
  std::vector<std::pair<int, NetworkBuffer>> events;
  gate_->TakePriorityEvents(&events);
  carry_ = &carry;
  for (const auto& [channel, barrier] : events) OnBarrierBuffer(channel, barrier);
  carry_ = nullptr;
}

absl::Status StreamTask::ReplayChannelState(RowBatch* batches) {
  if (restored_channels_.empty()) return absl::OkStatus();
  spdlog::info("task {}: replaying {} in-flight buffer(s) ({} bytes) of unaligned checkpoint {}", tdd_.task_id(),
               restored_channels_.entries().size(), restored_channels_.bytes(), tdd_.restore().checkpoint_id());
  ChannelState state = std::move(restored_channels_);
  restored_channels_ = ChannelState();
  // A checkpoint taken in the middle would miss the entries not replayed
  // yet: barriers wait until the replay is done.
  replaying_ = true;
  struct Done {
    bool& flag;
    ~Done() { flag = false; }
  } done{replaying_};
  for (const ChannelStateEntry& e : state.entries()) {
    if (!e.output) continue;
    if (e.index < 0 || e.index >= static_cast<int>(emitters_.size())) {
      return absl::DataLossError(absl::StrCat("channel state: no output ", e.index));
    }
    NetworkBuffer b;
    b.data = e.data;
    b.num_records = e.num_records;
    emitters_[e.index]->Restore(e.subpartition, std::move(b));
  }
  for (const ChannelStateEntry& e : state.entries()) {
    if (e.output) continue;
    if (!gate_ || e.index < 0 || e.index > 1) return absl::DataLossError(absl::StrCat("channel state: no input ", e.index));
    RETURN_IF_ERROR(PushRecords(e.index, e.data, e.num_records, batches[e.index]));
    RETURN_IF_ERROR(CheckOperators());
  }
  return CheckOperators();
}

void StreamTask::TriggerCheckpoint(int64_t checkpoint_id, const BarrierOptions& options) {
  {
    // The options go with the newest id (a savepoint's aligned barrier must
    // not take an older checkpoint's unaligned options).
    std::lock_guard<std::mutex> lock(requests_mu_);
    if (checkpoint_id <= trigger_requested_.load()) return;
    trigger_options_ = options;
    trigger_requested_.store(checkpoint_id);
  }
  has_requests_.store(true, std::memory_order_release);
  if (input_ended_.load()) {
    std::lock_guard<std::mutex> lock(requests_mu_);
    requests_cv_.notify_all();
  }
}

void StreamTask::NotifyCheckpoint(int64_t checkpoint_id, bool completed) {
  {
    std::lock_guard<std::mutex> lock(requests_mu_);
    notifications_.emplace_back(checkpoint_id, completed);
    has_requests_.store(true, std::memory_order_release);
    requests_cv_.notify_all();
  }
}

void StreamTask::ProcessCheckpointRequests() {
  // One load per batch; requests that arrive after the exchange are read
  // below or set the flag again.
  if (!has_requests_.load(std::memory_order_acquire)) return;
  has_requests_.exchange(false, std::memory_order_acq_rel);
  // Sources start checkpoints when triggered; other tasks when barriers
  // align, or when triggered after their input ended. A trigger that comes
  // while the input runs stays requested: if the input ends before its
  // barrier arrives, the final wait takes it.
  int64_t trigger = 0;
  std::vector<std::pair<int64_t, bool>> notes;
  BarrierOptions options;
  {
    std::lock_guard<std::mutex> lock(requests_mu_);
    notes.swap(notifications_);
    trigger = trigger_requested_.load();
    options = trigger_options_;
  }
  if (trigger > last_triggered_ && (!gate_ || input_ended_) && !cancelled_) {
    PerformCheckpoint(trigger, 0, options);
    MaybeFinishChannelState();
  }
  if (checkpoints_) {
    for (const auto& [id, completed] : notes) {
      checkpoints_->OnNotification(id, completed);
      if (completed && final_checkpoint_ > 0 && id >= final_checkpoint_) final_committed_ = true;
    }
  }
}

absl::Status StreamTask::AwaitFinalCheckpoint() {
  input_ended_ = true;
  if (!checkpoints_ || !needs_final_checkpoint_) return absl::OkStatus();
  spdlog::debug("task {}: input ended; waiting for a final checkpoint to publish its output", tdd_.task_id());
  has_requests_.store(true);
  while (!cancelled_ && !final_committed_) {
    ProcessCheckpointRequests();
    RETURN_IF_ERROR(CheckOperators());
    if (final_committed_) break;
    std::unique_lock<std::mutex> lock(requests_mu_);
    requests_cv_.wait_for(lock, std::chrono::milliseconds(50),
                          [&] { return cancelled_.load() || has_requests_.load(); });
  }
  if (cancelled_) return absl::CancelledError("task cancelled");
  return absl::OkStatus();
}

bool StreamTask::AlignmentPauses(const SourceOperator& source) {
  const int64_t watermark = source.current_watermark();
  aligned_->watermark.store(watermark, std::memory_order_relaxed);
  aligned_->idle.store(source.idle(), std::memory_order_relaxed);
  if (start_watermark_ == kMinWatermark) start_watermark_ = watermark;
  // Up to max_drift past where this subtask started, whatever the group's
  // bound says yet. Until every subtask of the group has read its first
  // record, the JobManager bounds them all at their first batch
  // (jobmanager/watermark_alignment.h): a report or two of standing still
  // at the start, which a paced source made up as a backlog (q4: 33 ms, and
  // its first 300 ms of records late). The drift allowed is alignment's own.
  int64_t bound = aligned_->max_watermark.load(std::memory_order_relaxed);
  if (start_watermark_ != kMinWatermark) bound = std::max(bound, SatAdd(start_watermark_, aligned_->max_drift_ms));
  if (watermark <= bound) {
    if (alignment_paused_since_ns_ != 0) {
      alignment_paused_ns_ += MonotonicNanos() - alignment_paused_since_ns_;
      alignment_paused_since_ns_ = 0;
    }
    return false;
  }
  if (alignment_paused_since_ns_ == 0) alignment_paused_since_ns_ = MonotonicNanos();
  // The bound moves once per update interval: a short wait, not a spin.
  // (TriggerCheckpoint does not wake it: a trigger waits up to 1 ms.)
  std::unique_lock<std::mutex> lock(requests_mu_);
  requests_cv_.wait_for(lock, std::chrono::milliseconds(1), [&] { return cancelled_.load() || has_requests_.load(); });
  return true;
}

bool StreamTask::HasPendingWork() const {
  for (const auto& op : operators_) {
    if (op->has_pending_work()) return true;
  }
  return checkpoints_ != nullptr && checkpoints_->copy_pending();
}

bool StreamTask::DoPendingWork() {
  bool pending = false;
  for (auto& op : operators_) {
    if (!op->has_pending_work()) continue;
    op->DoPendingWork();
    pending = pending || op->has_pending_work();
  }
  if (checkpoints_ != nullptr && checkpoints_->copy_pending()) {
    checkpoints_->CopySlice(TaskCheckpoints::kCopySliceEntries);
    pending = pending || checkpoints_->copy_pending();
  }
  return pending;
}

void StreamTask::OnTick() {
  const int64_t now = MonotonicMillis();
  if (now >= next_scan_release_ms_) {
    next_scan_release_ms_ = now + 1000;
    for (auto& op : operators_) {
      KeyedStateBackend* state = op->keyed_state();
      if (state == nullptr) continue;
      state->ReleaseScans();
      // A failure (a flush refused while writes are stopped) keeps the log
      // whole; the next tick tries again.
      if (absl::Status s = state->MaintainStateLog(); !s.ok()) {
        spdlog::warn("task {}: {}", tdd_.task_id(), s.ToString());
      }
    }
  }
  if (preflush_at_ms_ != 0 && now >= preflush_at_ms_) {
    preflush_at_ms_ = 0;
    Preflush();
  }
  if (!wants_processing_time_) return;
  const int64_t wall = NowMillis();
  for (auto& op : operators_) {
    if (op->wants_processing_time()) op->OnProcessingTime(wall);
  }
}

void StreamTask::Preflush() {
  for (auto& op : operators_) {
    KeyedStateBackend* state = op->keyed_state();
    if (state == nullptr) continue;
    // A failure here fails the next snapshot, which reports it.
    absl::StatusOr<bool> started = state->FlushMemtablesInBackground(kPreflushMinEntries);
    if (!started.ok()) spdlog::warn("task {}: {}", tdd_.task_id(), started.status().ToString());
  }
}

absl::Status StreamTask::Run() {
  using Clock = std::chrono::steady_clock;
  const auto timeout = std::chrono::milliseconds(buffer_timeout_ms_);
  auto next_flush = Clock::now() + timeout;
  StreamOperator* head = operators_[0].get();
  AwaitConsumers();

  if (!gate_) {
    auto* source = dynamic_cast<SourceOperator*>(head);
    if (!source) return absl::InternalError("a task without inputs must start with a source");
    source->set_latency_marker_interval(latency_marker_interval_us_, static_cast<uint64_t>(tdd_.subtask_index()));
    RETURN_IF_ERROR(ReplayChannelState(nullptr));
    // A source that had finished when the checkpoint restored from was
    // taken produces nothing more.
    // Its own snapshot decides (a checkpoint of an earlier chaining may hold
    // a finished source beside an unfinished union of its branches).
    while (!cancelled_ && !head_finished_on_restore_) {
      // Produce only with room at the outputs, so that a checkpoint trigger
      // is not held up behind a blocked emit.
      if (responsive_) AwaitOutputRoom(nullptr);
      // Ahead of its watermark alignment group: no reading this round, but
      // checkpoints, flushes and cancellation go on.
      SourceStatus st = SourceStatus::kMoreAvailable;
      // Work a chained operator left pending (a window firing in slices)
      // comes first: the source reads on once it is done, and checkpoints
      // are taken between its slices.
      const bool pending = DoPendingWork();
      RETURN_IF_ERROR(CheckOperators());
      if (!pending && (!aligned_ || !AlignmentPauses(*source))) {
        // Latency markers due go out after the call's first batch
        // (SourceOperator::ArmLatencyMarker, DateLatencyMarker).
        if (latency_marker_interval_us_ > 0) source->ArmLatencyMarker(NowMicros());
        // A paced source makes what is due before the flush (RateLimiter).
        source->set_flush_deadline_ns(
            std::chrono::duration_cast<std::chrono::nanoseconds>(next_flush.time_since_epoch()).count());
        const int64_t produced_before = counters_[0]->records_out.load(std::memory_order_relaxed);
        st = source->Produce();
        const int64_t produced = counters_[0]->records_out.load(std::memory_order_relaxed) - produced_before;
        if (produced > 0) source->SendLatencyMarker();
        // A throttled sink chained into the source task paces the source.
        Throttle(static_cast<size_t>(produced));
        RETURN_IF_ERROR(CheckOperators());
      }
      ProcessCheckpointRequests();
      MaybeFinishChannelState();
      if (Clock::now() >= next_flush) {
        OnTick();
        source->EmitDueWatermark(MonotonicMillis());
        FlushAll();
        next_flush = Clock::now() + timeout;
      }
      if (st == SourceStatus::kEnd) break;
    }
    if (aligned_) {
      aligned_->done.store(true, std::memory_order_release);  // no longer holds its group back
      if (alignment_paused_since_ns_ != 0) alignment_paused_ns_ += MonotonicNanos() - alignment_paused_since_ns_;
      spdlog::info("task {}: paused {} ms for watermark alignment (group '{}', max drift {} ms)", tdd_.task_id(),
                   alignment_paused_ns_ / 1'000'000, aligned_->group, aligned_->max_drift_ms);
    }
  } else {
    gate_->Start();
    RowBatch batches[2] = {RowBatch(input_schemas_[0].size()), RowBatch(input_schemas_[1].size())};
    NetworkBuffer buffer;
    int channel = 0;
    bool done = false;
    PendingWorkPacer pacer;
    RETURN_IF_ERROR(ReplayChannelState(batches));
    // A snapshot's copies run here, in slices when the input has run dry,
    // as pending work does (TaskCheckpoints::set_copy_in_slices).
    if (checkpoints_) checkpoints_->set_copy_in_slices(true);
    while (!done && !cancelled_) {
      ProcessCheckpointRequests();
      if (responsive_) gate_->ConvertOverdueBarriers(NowMillis());
      if (barriers_->deadline_ms() > 0) OnCheckpointBarriers(barriers_->CheckTimeout(NowMillis()));
      MaybeFinishChannelState();
      // Work left pending by an operator (a window firing in slices) goes
      // on between buffers of input, input first (PendingWorkPacer), and the
      // input is not waited for meanwhile.
      bool pending = HasPendingWork();
      pacer.OnPending(pending, pending ? MonotonicMillis() : 0);
      if (pending && pacer.SliceNow()) {
        pending = DoPendingWork();
        pacer.OnSlice();
        RETURN_IF_ERROR(CheckOperators());
      }
      switch (gate_->Next(pending ? Clock::now() : next_flush, &buffer, &channel)) {
        case GateResult::kBuffer: {
          pacer.OnBuffer();
          if (buffer.kind == BufferKind::kWatermark) {
            PushWatermark(valve_->OnWatermark(channel, buffer.watermark));
            RETURN_IF_ERROR(CheckOperators());
            break;
          }
          if (buffer.kind == BufferKind::kBarrier) {
            OnBarrierBuffer(channel, buffer);
            RETURN_IF_ERROR(CheckOperators());
            break;
          }
          if (buffer.kind == BufferKind::kIdle) {
            const WatermarkValve::IdleResult r = valve_->OnIdle(channel);
            PushWatermark(r.watermark);
            if (r.became_idle) head->PushIdle();
            RETURN_IF_ERROR(CheckOperators());
            break;
          }
          if (buffer.num_records == 0) {  // only a latency marker: no records, not activity
            if (buffer.latency_marker_us > 0) head->PushLatencyMarker(buffer.latency_marker_us);
            if (buffer.then_watermark) PushWatermark(valve_->OnWatermark(channel, buffer.watermark));
            RETURN_IF_ERROR(CheckOperators());
            break;
          }
          valve_->OnRecords(channel);
          const int input = channel_input_[channel];
          if (channel_state_.checkpoint_id != 0 && barriers_->recording(channel)) {
            // Before this channel's barrier, after the unaligned snapshot.
            channel_state_.state.AddInput(input, buffer.num_records, buffer.data);
          }
          RETURN_IF_ERROR(PushRecords(input, buffer.data, buffer.num_records, batches[input]));
          if (buffer.latency_marker_us > 0) head->PushLatencyMarker(buffer.latency_marker_us);
          if (buffer.then_watermark) PushWatermark(valve_->OnWatermark(channel, buffer.watermark));
          RETURN_IF_ERROR(CheckOperators());
          break;
        }
        case GateResult::kChannelEnd:
          PushWatermark(valve_->OnEnd(channel));
          OnCheckpointBarriers(barriers_->OnChannelEnd(channel));
          RETURN_IF_ERROR(CheckOperators());
          break;
        case GateResult::kTimeout:
          pacer.OnNoInput();
          break;
        case GateResult::kEnd:
          done = true;
          break;
        case GateResult::kFailed:
          return absl::UnavailableError(gate_->error());
        case GateResult::kCancelled:
          return absl::CancelledError("task cancelled");
      }
      if (Clock::now() >= next_flush) {
        OnTick();
        FlushAll();
        next_flush = Clock::now() + timeout;
      }
    }
  }
  if (checkpoints_) checkpoints_->set_copy_in_slices(false);
  if (cancelled_) {
    // Notifications that came before the cancellation still count (stop
    // with savepoint: sinks publish what the savepoint covers).
    has_requests_.store(true);
    ProcessCheckpointRequests();
    return absl::CancelledError("task cancelled");
  }
  // End of input is the end of event time: every pending window fires.
  if (!valve_ || valve_->watermark() < kMaxWatermark) head->PushWatermark(kMaxWatermark);
  head->Finish();  // cascades down the chain to the tail's emitters
  for (Output* side : side_outputs_) side->Finish();
  RETURN_IF_ERROR(CheckOperators());
  // A snapshot whose aligned barriers with a deadline are still queued: they
  // leave (the consumers drain up to the end of partition) or turn
  // unaligned; only then is it acknowledged, before FINISHED.
  while (channel_state_.checkpoint_id != 0 && !cancelled_) {
    MaybeFinishChannelState();
    if (channel_state_.checkpoint_id != 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  RETURN_IF_ERROR(AwaitFinalCheckpoint());
  // FINISHED goes out only after every acknowledgement did: a finished task
  // counts as having acknowledged with no state.
  if (checkpoints_) checkpoints_->WaitForUploads(cancelled_);
  if (cancelled_) return absl::CancelledError("task cancelled");
  return absl::OkStatus();
}

Schema EmittedSchema(const proto::JobGraph& graph, const proto::JobEdge& edge) {
  const proto::JobVertex& source = graph.vertices(edge.source());
  if (edge.side_output() == kDeadLetterOutput) return DeadLetterSchema();
  if (edge.side_output() == kLateOutput) return Schema::FromProto(source.input_schema());
  return Schema::FromProto(source.output_schema());
}

std::string StreamTask::StateDir(const std::string& data_dir, const proto::TaskDeploymentDescriptor& tdd,
                                 int vertex_id) {
  return (std::filesystem::path(data_dir) / "state" / tdd.job_id() / absl::StrCat("a", tdd.attempt()) /
          absl::StrCat(vertex_id, "-", tdd.subtask_index()))
      .string();
}

}  // namespace vstream
