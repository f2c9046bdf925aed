//! Scheduler state-machine tests with a real SQLite store and time driven by hand.

use beard_proto::v1::{
    AttackShard, CompleteRequest, LeaseRef, RegisterRequest, SampleOutcome, SubmittedFile, TaskFailure, TrainResult,
    complete_request, task_spec,
};

use super::*;

const SWEEP: &str = r#"
name: unit
datasets:
  synthetic: {}
methods:
  random: random
ipc: [1]
attacks:
  fgsm: {}
targeted: [false]
seeds: 1
"#;

/// A submit request of `yaml` without checkpoints.
fn sweep_file(yaml: &str, file_name: &str) -> SubmitRequest {
    SubmitRequest { yaml: yaml.to_owned(), file_name: file_name.to_owned(), checkpoints: Vec::new() }
}

struct Fixture {
    _dir: tempfile::TempDir,
    scheduler: Scheduler,
    sweep: String,
}

fn fixture(max_attempts: u32) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let config = SchedulerConfig {
        lease_ttl: Duration::from_secs(30),
        heartbeat_interval: Duration::from_secs(10),
        max_attempts,
        retry_backoff: Duration::from_secs(1),
    };
    let mut scheduler = Scheduler::new(store, config);
    let sweep = scheduler.submit(&sweep_file(SWEEP, "unit.yaml"), 0).expect("submit").sweep_id;
    for name in ["a", "b"] {
        scheduler.register(&registration(name, &format!("{name}-1"), ""), 0).expect("register");
    }
    Fixture { _dir: dir, scheduler, sweep }
}

/// A registration of `generation` under `name`, naming its predecessor (`""`: none).
fn registration(name: &str, generation: &str, replaces: &str) -> RegisterRequest {
    RegisterRequest {
        protocol_version: beard_proto::PROTOCOL_VERSION,
        agent_name: name.into(),
        generation: generation.into(),
        device: "cpu".into(),
        replaces_generation: replaces.into(),
    }
}

fn lease(s: &mut Scheduler, agent: &str, now: i64) -> Option<LeasedTask> {
    s.lease(agent, &format!("{agent}-1"), &[], now).expect("lease").task
}

/// `agent`'s completion of `task` under its lease.
fn completion(task: &LeasedTask, agent: &str, outcome: complete_request::Outcome) -> CompleteRequest {
    CompleteRequest {
        task_id: task.task_id.clone(),
        lease_token: task.lease_token.clone(),
        agent_name: agent.into(),
        outcome: Some(outcome),
    }
}

fn train_done(task: &LeasedTask, agent: &str) -> CompleteRequest {
    let checkpoint = b"not really safetensors".to_vec();
    let result = TrainResult { checkpoint_sha256: sha256_hex(&checkpoint), checkpoint, ..Default::default() };
    completion(task, agent, complete_request::Outcome::Train(result))
}

fn shard_done(task: &LeasedTask, agent: &str) -> CompleteRequest {
    let shard = AttackShard {
        samples: 1,
        clean_accuracy: 100.0,
        robust_accuracy: 0.0,
        outcomes: vec![SampleOutcome { clean_correct: true, success: true, success_step: 1, ..Default::default() }],
        ..Default::default()
    };
    completion(task, agent, complete_request::Outcome::Attack(shard))
}

fn failed(task: &LeasedTask, failure: TaskFailure) -> CompleteRequest {
    completion(task, "a", complete_request::Outcome::Failure(failure))
}

fn is_train(task: &LeasedTask) -> bool {
    matches!(task.spec.as_ref().and_then(|s| s.kind.as_ref()), Some(task_spec::Kind::Train(_)))
}

#[test]
fn attack_tasks_wait_for_their_train_task() {
    let mut f = fixture(3);
    let train = lease(&mut f.scheduler, "a", 1).expect("the train task is leasable");
    assert!(is_train(&train));
    assert!(lease(&mut f.scheduler, "b", 2).is_none(), "the attack task waits for its checkpoint");
    assert!(f.scheduler.complete(train_done(&train, "a"), 3).expect("complete").accepted);
    let attack = lease(&mut f.scheduler, "b", 4).expect("the attack task is leasable now");
    assert!(!is_train(&attack));
    assert!(f.scheduler.complete(shard_done(&attack, "b"), 5).expect("complete").accepted);
    let status = f.scheduler.status(Some(&f.sweep), 6).expect("status").sweeps.remove(0);
    assert_eq!((status.state.as_str(), status.done, status.total), ("completed", 2, 2));
    let counted = f.scheduler.counters().values();
    assert_eq!((counted.trains_completed, counted.attacks_completed, counted.attacked_images), (1, 1, 1));
}

#[test]
fn an_expired_lease_is_requeued_and_its_late_completion_rejected() {
    let mut f = fixture(3);
    let first = lease(&mut f.scheduler, "a", 0).expect("leased");
    // No heartbeat for longer than the TTL: the lease goes back to the queue.
    assert_eq!(f.scheduler.expire(31_000).expect("expire"), 1);
    let second = lease(&mut f.scheduler, "b", 31_001).expect("re-leased");
    assert_eq!(second.task_id, first.task_id);
    assert_eq!(second.attempt, 2);
    let late = f.scheduler.complete(train_done(&first, "a"), 31_002).expect("complete");
    assert!(!late.accepted, "a completion from the lost lease is rejected");
    assert!(f.scheduler.complete(train_done(&second, "b"), 31_003).expect("complete").accepted);
    let counted = f.scheduler.counters().values();
    assert_eq!((counted.lease_expiries, counted.retries, counted.trains_completed), (1, 1, 1));
}

#[test]
fn a_repeated_completion_is_idempotent_and_counted_once() {
    let mut f = fixture(3);
    let task = lease(&mut f.scheduler, "a", 0).expect("leased");
    assert!(f.scheduler.complete(train_done(&task, "a"), 1).expect("complete").accepted);
    let again = f.scheduler.complete(train_done(&task, "a"), 2).expect("complete");
    assert!(again.accepted);
    assert_eq!(again.reason, "already accepted");
    let status = f.scheduler.status(Some(&f.sweep), 3).expect("status").sweeps.remove(0);
    assert_eq!(status.done, 1);
    assert_eq!(f.scheduler.counters().values().trains_completed, 1);
}

#[test]
fn heartbeats_keep_a_lease_alive() {
    let mut f = fixture(3);
    let task = lease(&mut f.scheduler, "a", 0).expect("leased");
    let revoked =
        f.scheduler.heartbeat("a", "a-1", std::slice::from_ref(&task.lease_token), "", 20_000).expect("heartbeat");
    assert!(revoked.is_empty());
    assert_eq!(f.scheduler.expire(40_000).expect("expire"), 0, "renewed until 50 s");
    let unknown = f.scheduler.heartbeat("a", "a-1", &["nope".into()], "", 40_001).expect("heartbeat");
    assert_eq!(unknown, vec!["nope".to_owned()]);
}

#[test]
fn retryable_failures_back_off_then_quarantine_and_fail_dependents() {
    let mut f = fixture(2);
    let task = lease(&mut f.scheduler, "a", 0).expect("leased");
    f.scheduler.complete(failed(&task, TaskFailure::retryable("flaky", "boom")), 1).expect("complete");
    assert!(lease(&mut f.scheduler, "a", 2).is_none(), "backoff delays the retry");
    let retry = lease(&mut f.scheduler, "a", 5_000).expect("retried after the backoff");
    f.scheduler.complete(failed(&retry, TaskFailure::retryable("flaky", "boom")), 5_001).expect("complete");
    let status = f.scheduler.status(Some(&f.sweep), 5_002).expect("status").sweeps.remove(0);
    assert_eq!(status.state, "completed");
    assert_eq!(status.failed, 2, "the train task and its attack task");
    let codes: Vec<_> = status.errors.iter().filter_map(|e| e.failure.as_ref()).map(|f| f.code.as_str()).collect();
    assert!(codes.contains(&codes::RETRIES_EXHAUSTED), "{codes:?}");
    assert!(codes.contains(&codes::DEPENDENCY_FAILED), "{codes:?}");
    let counted = f.scheduler.counters().values();
    assert_eq!((counted.retries, counted.quarantined), (1, [1, 0, 1]), "retries_exhausted, then its dependent");
}

#[test]
fn a_permanent_failure_is_not_retried() {
    let mut f = fixture(5);
    let train = lease(&mut f.scheduler, "a", 0).expect("leased");
    f.scheduler.complete(train_done(&train, "a"), 1).expect("complete");
    let attack = lease(&mut f.scheduler, "a", 2).expect("leased");
    let unsupported = TaskFailure::permanent(codes::UNSUPPORTED_ATTACK, "no such attack here");
    f.scheduler.complete(failed(&attack, unsupported), 3).expect("complete");
    assert!(lease(&mut f.scheduler, "a", 60_000).is_none());
    let status = f.scheduler.status(Some(&f.sweep), 60_001).expect("status").sweeps.remove(0);
    assert_eq!(status.failed, 1);
    assert_eq!(status.errors[0].failure.as_ref().map(|f| f.code.as_str()), Some(codes::UNSUPPORTED_ATTACK));
    assert_eq!(f.scheduler.counters().values().quarantined, [0, 1, 0]);
}

#[test]
fn a_restarted_agent_loses_the_leases_of_its_previous_generation() {
    let mut f = fixture(3);
    let task = lease(&mut f.scheduler, "a", 0).expect("leased");
    f.scheduler.register(&registration("a", "a-2", "a-1"), 1).expect("a restart takes its name over at once");
    let again = f.scheduler.lease("b", "b-1", &[], 2).expect("lease").task.expect("requeued at once");
    assert_eq!(again.task_id, task.task_id);
    let stale = f.scheduler.lease("a", "a-1", &[], 3).expect_err("the replaced generation is told so");
    assert!(matches!(stale, SchedulerError::StaleGeneration { .. }), "{stale:?}");
    assert_eq!(tonic::Status::from(stale).code(), tonic::Code::Aborted);
    assert_eq!(f.scheduler.counters().values().retries, 1, "the requeued lease");
}

#[test]
fn a_name_held_by_a_live_agent_is_refused_to_another_process() {
    let mut f = fixture(3);
    let task = lease(&mut f.scheduler, "a", 0).expect("leased");
    let refused = f.scheduler.register(&registration("a", "intruder", ""), 10_000).expect_err("refused");
    let message = refused.to_string();
    assert!(
        matches!(&refused, SchedulerError::NameInUse { holder, .. }
            if holder.holder_generation == "a-1" && holder.silent_ms == 10_000 && holder.lease_ttl_ms == 30_000),
        "{refused:?}"
    );
    assert!(message.contains("a-1") && message.contains("--name"), "names the holder, suggests --name: {message}");
    let status = tonic::Status::from(refused);
    assert_eq!(status.code(), tonic::Code::AlreadyExists);
    let details = NameInUse::decode(status.details()).expect("typed details");
    assert_eq!((details.holder_generation.as_str(), details.silent_ms), ("a-1", 10_000));
    // Nothing changed: the holder keeps its name and its lease.
    let revoked =
        f.scheduler.heartbeat("a", "a-1", std::slice::from_ref(&task.lease_token), "", 10_001).expect("heartbeat");
    assert!(revoked.is_empty(), "the holder's lease is untouched");
    assert_eq!(f.scheduler.counters().values().retries, 0);
}

#[test]
fn a_name_whose_holder_is_silent_for_a_ttl_is_taken_over() {
    let mut f = fixture(3);
    lease(&mut f.scheduler, "a", 0).expect("leased");
    let ttl = 30_000;
    let refused = f.scheduler.register(&registration("a", "newcomer", ""), ttl - 1).expect_err("still live");
    assert!(matches!(refused, SchedulerError::NameInUse { .. }), "{refused:?}");
    f.scheduler.register(&registration("a", "newcomer", ""), ttl).expect("the silent holder's name is free");
    let stale = f.scheduler.lease("a", "a-1", &[], ttl + 1).expect_err("the old generation is stale");
    assert!(matches!(stale, SchedulerError::StaleGeneration { .. }), "{stale:?}");
}

#[test]
fn resubmitting_reuses_finished_tasks_and_invalid_files_write_nothing() {
    let mut f = fixture(3);
    let task = lease(&mut f.scheduler, "a", 0).expect("leased");
    f.scheduler.complete(train_done(&task, "a"), 1).expect("complete");
    let again = f.scheduler.submit(&sweep_file(SWEEP, "unit.yaml"), 2).expect("submit");
    assert_eq!(again.reused_tasks, 1);
    let before = f.scheduler.status(None, 3).expect("status").sweeps.len();
    assert!(f.scheduler.submit(&sweep_file("name: x\nipc: [0]\n", "bad.yaml"), 4).is_err());
    assert_eq!(f.scheduler.status(None, 5).expect("status").sweeps.len(), before);
}

#[test]
fn cancelled_sweeps_lease_nothing_and_revoke_running_leases() {
    let mut f = fixture(3);
    let task = lease(&mut f.scheduler, "a", 0).expect("leased");
    f.scheduler.cancel(&f.sweep).expect("cancel");
    let revoked = f.scheduler.heartbeat("a", "a-1", std::slice::from_ref(&task.lease_token), "", 1).expect("heartbeat");
    assert_eq!(revoked, vec![task.lease_token.clone()]);
    f.scheduler.expire(60_000).expect("expire");
    assert!(lease(&mut f.scheduler, "b", 60_001).is_none());
}

const POOL_SWEEP: &str = r#"
name: pool
datasets:
  synthetic: {}
methods:
  pooled:
    checkpoints: { synthetic: { 1: models/pooled.safetensors } }
ipc: [1]
attacks:
  fgsm: {}
targeted: [false]
seeds: 3
"#;

#[test]
fn model_pool_entries_are_done_at_submit_and_serve_their_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut scheduler = Scheduler::new(Store::open(dir.path()).expect("store"), SchedulerConfig::default());
    let bytes = crate::sweep::small_convnet(0.5);
    let mut request = sweep_file(POOL_SWEEP, "pool.yaml");
    request.checkpoints.push(SubmittedFile { path: "models/pool.safetensors".into(), content: bytes.clone() });
    let error = scheduler.submit(&request, 0).expect_err("the sweep's path is not carried").to_string();
    assert!(error.contains("pool.yaml:7:") && error.contains("methods.pooled.checkpoints.synthetic.1"), "{error}");
    assert!(error.contains("does not carry this checkpoint"), "{error}");

    request.checkpoints[0].path = "models/pooled.safetensors".into();
    request.checkpoints[0].content = b"not a model".to_vec();
    let error = scheduler.submit(&request, 0).expect_err("not a checkpoint").to_string();
    assert!(error.contains("models/pooled.safetensors: not a checkpoint"), "{error}");
    assert!(scheduler.status(None, 0).expect("status").sweeps.is_empty(), "nothing stored for a bad file");

    request.checkpoints[0].content = bytes.clone();
    let response = scheduler.submit(&request, 0).expect("submit");
    assert_eq!((response.train_tasks, response.pool_models, response.attack_tasks), (0, 1, 1));
    let status = scheduler.status(Some(&response.sweep_id), 0).expect("status").sweeps.remove(0);
    assert_eq!(
        (status.total, status.done, status.pending),
        (2, 1, 1),
        "the entry is done, its attack waits for an agent"
    );
    scheduler.register(&registration("a", "a-1", ""), 0).expect("register");
    let leased = scheduler.lease("a", "a-1", &[], 0).expect("lease").task.expect("the attack is leasable at once");
    let Some(task_spec::Kind::Attack(attack)) = leased.spec.and_then(|spec| spec.kind) else {
        panic!("an attack task")
    };
    assert_eq!(attack.train.as_ref().map(|train| (train.seed, train.training.is_none())), Some((0, true)));
    let digest = scheduler.output(&attack.train_task_id).expect("the checkpoint is stored");
    assert_eq!(digest, beard_proto::keys::sha256_hex(&bytes));
    assert_eq!(scheduler.blobs().get(&digest).expect("served"), bytes);

    let again = scheduler.submit(&request, 1).expect("resubmit");
    assert_eq!((again.pool_models, again.reused_tasks), (1, 1), "the same checkpoint is the same entry");
}

#[test]
fn checkpoints_must_fit_the_dataset_and_the_method_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut scheduler = Scheduler::new(Store::open(dir.path()).expect("store"), SchedulerConfig::default());
    let submit = |scheduler: &mut Scheduler, yaml: &str| {
        let mut request = sweep_file(yaml, "pool.yaml");
        request.checkpoints.push(SubmittedFile {
            path: "models/pooled.safetensors".into(),
            content: crate::sweep::small_convnet(0.0),
        });
        scheduler.submit(&request, 0).map(|_| ()).map_err(|error| error.to_string())
    };
    let cifar100 =
        POOL_SWEEP.replace("synthetic: {}", "cifar100: { root: /data }").replace("{ synthetic:", "{ cifar100:");
    let error = submit(&mut scheduler, &cifar100).expect_err("10 classes for cifar100");
    assert!(error.contains("the weights are for classes 10, cifar100 has 100"), "{error}");
    let pinned = POOL_SWEEP.replace("    checkpoints:", "    model: { width: 128 }\n    checkpoints:");
    let error = submit(&mut scheduler, &pinned).expect_err("width 4, not 128");
    assert!(error.contains("model.width is 128, the weights have width 4"), "{error}");
    let max_pool = POOL_SWEEP.replace("    checkpoints:", "    model: { pool: max, norm: instance }\n    checkpoints:");
    submit(&mut scheduler, &max_pool).expect("pooling is the method's to say");
}

/// Two random methods, one seed, FGSM untargeted white-box and transferred (each method judges
/// the other's examples).
const TRANSFER_SWEEP: &str = r#"
name: transfer
datasets:
  synthetic: {}
methods:
  first: random
  second: random
ipc: [1]
attacks: { fgsm: {} }
targeted: [false]
seeds: 1
transfer:
  attacks: { fgsm: {} }
"#;

fn is_transfer(task: &LeasedTask) -> bool {
    matches!(task.spec.as_ref().and_then(|s| s.kind.as_ref()), Some(task_spec::Kind::Attack(a)) if !a.transfer_targets.is_empty())
}

/// A scheduler with the transfer sweep alone (the fixture's own sweep cancelled) and its id.
fn transfer_fixture() -> (Fixture, String) {
    let mut f = fixture(1);
    let submitted = f.scheduler.submit(&sweep_file(TRANSFER_SWEEP, "transfer.yaml"), 0).expect("submit");
    assert_eq!((submitted.train_tasks, submitted.attack_tasks, submitted.transfer_tasks), (2, 2, 2));
    f.scheduler.cancel(&f.sweep).expect("cancel the fixture's sweep");
    (f, submitted.sweep_id)
}

/// Lease and complete every leasable task of `agent` at `now`; the transfer tasks among them.
fn run_leasable(f: &mut Fixture, agent: &str, now: i64) -> usize {
    let mut transfers = 0;
    while let Some(task) = lease(&mut f.scheduler, agent, now) {
        transfers += usize::from(is_transfer(&task));
        f.scheduler.complete(shard_done(&task, agent), now).expect("complete");
    }
    transfers
}

#[test]
fn a_transfer_task_waits_for_every_model_it_reads_and_fails_with_any_of_them() {
    let (mut f, sweep) = transfer_fixture();
    let first = lease(&mut f.scheduler, "a", 1).expect("first's train task");
    let second = lease(&mut f.scheduler, "b", 1).expect("second's train task");
    assert!(is_train(&first) && is_train(&second));
    f.scheduler.complete(train_done(&first, "a"), 2).expect("complete");
    assert_eq!(run_leasable(&mut f, "a", 3), 0, "first's white-box attack only: each transfer task reads both");
    f.scheduler.complete(failed(&second, TaskFailure::permanent("bad_set", "no such file")), 4).expect("complete");
    let status = f.scheduler.status(Some(&sweep), 5).expect("status").sweeps.remove(0);
    assert_eq!((status.done, status.failed), (2, 4), "second's train and attack task and both transfer tasks failed");
    let codes: Vec<_> = status.errors.iter().filter_map(|e| e.failure.as_ref()).map(|f| f.code.as_str()).collect();
    assert_eq!(codes.iter().filter(|code| **code == codes::DEPENDENCY_FAILED).count(), 3, "{codes:?}");
}

#[test]
fn a_transfer_task_is_leased_once_all_its_models_are_done() {
    let (mut f, sweep) = transfer_fixture();
    let first = lease(&mut f.scheduler, "a", 1).expect("train");
    let second = lease(&mut f.scheduler, "b", 1).expect("train");
    f.scheduler.complete(train_done(&second, "b"), 2).expect("complete");
    assert_eq!(run_leasable(&mut f, "b", 3), 0, "first's checkpoint is still missing");
    f.scheduler.complete(train_done(&first, "a"), 4).expect("complete");
    assert_eq!(run_leasable(&mut f, "a", 5), 2, "first's white-box attack and both transfer tasks");
    let status = f.scheduler.status(Some(&sweep), 6).expect("status").sweeps.remove(0);
    assert_eq!((status.state.as_str(), status.done), ("completed", 6));
}

/// The unit sweep with its method's sets distilled on the cluster.
fn distill_sweep() -> String {
    SWEEP.replace("random: random", "DM: { distill: { method: dm, iterations: 4, batch_real: 2 } }")
}

fn distill_fixture() -> Fixture {
    let mut f = fixture(3);
    // The fixture's sweep takes no part: finish its train and attack task out of the way.
    let train = lease(&mut f.scheduler, "a", 0).expect("the first sweep's train task");
    f.scheduler.complete(train_done(&train, "a"), 0).expect("complete");
    let attack = lease(&mut f.scheduler, "a", 0).expect("its attack task");
    f.scheduler.complete(shard_done(&attack, "a"), 0).expect("complete");
    let submitted = f.scheduler.submit(&sweep_file(&distill_sweep(), "distilled.yaml"), 0).expect("submit");
    assert_eq!((submitted.distill_tasks, submitted.train_tasks, submitted.attack_tasks), (1, 1, 1));
    f.sweep = submitted.sweep_id;
    f
}

fn is_distill(task: &LeasedTask) -> bool {
    matches!(task.spec.as_ref().and_then(|s| s.kind.as_ref()), Some(task_spec::Kind::Distill(_)))
}

/// A distill task's completion naming its two files by digest (uploaded or not).
fn distill_done(task: &LeasedTask, agent: &str) -> CompleteRequest {
    let result = DistillResult {
        set_sha256: sha256_hex(SET),
        safetensors_sha256: sha256_hex(SAFETENSORS),
        ..Default::default()
    };
    completion(task, agent, complete_request::Outcome::Distill(result))
}

const SET: &[u8] = b"a torch.save file";
const SAFETENSORS: &[u8] = b"a safetensors file";

/// Upload a distill task's two files, as an agent does before completing.
fn upload_distilled(scheduler: &Scheduler) {
    for bytes in [SET, SAFETENSORS] {
        scheduler.blobs().put(&sha256_hex(bytes), bytes).expect("stored");
    }
}

/// `agent`'s lease on `task`, under `token`.
fn lease_ref(task: &LeasedTask, agent: &str, token: &str) -> LeaseRef {
    LeaseRef {
        agent_name: agent.into(),
        generation: format!("{agent}-1"),
        task_id: task.task_id.clone(),
        lease_token: token.into(),
    }
}

/// A snapshot at `iteration` whose state (`state after N`) was uploaded first.
fn snapshot_request(scheduler: &mut Scheduler, task: &LeasedTask, agent: &str, iteration: u32) -> SaveSnapshotRequest {
    let state = format!("state after {iteration}").into_bytes();
    let state_sha256 = sha256_hex(&state);
    let lease = lease_ref(task, agent, &task.lease_token);
    scheduler.blobs().put(&state_sha256, &state).expect("upload");
    scheduler.record_upload(&lease, &state_sha256).expect("recorded");
    SaveSnapshotRequest { lease: Some(lease), snapshot: Some(Snapshot { iteration, state_sha256, state: Vec::new() }) }
}

#[test]
fn a_distill_task_runs_first_resumes_from_its_snapshot_and_then_feeds_its_train_task() {
    let mut f = distill_fixture();
    let distill = lease(&mut f.scheduler, "a", 1).expect("the distill task");
    assert!(is_distill(&distill) && distill.snapshot.is_none());
    assert!(lease(&mut f.scheduler, "b", 2).is_none(), "the train task waits for the set");
    let progress = "iteration 2/4: loss 1.5000";
    f.scheduler.heartbeat("a", "a-1", std::slice::from_ref(&distill.lease_token), progress, 3).expect("heartbeat");
    let status = f.scheduler.status(Some(&f.sweep), 4).expect("status").sweeps.remove(0);
    assert_eq!(status.running.len(), 1);
    let running = &status.running[0];
    assert_eq!((running.agent.as_str(), running.progress.as_str()), ("a", progress));
    assert!(running.description.contains("distill"), "{}", running.description);
    let first = snapshot_request(&mut f.scheduler, &distill, "a", 1);
    assert!(f.scheduler.save_snapshot(&first, 5).expect("snapshot"));
    let first_state = first.snapshot.expect("snapshot").state_sha256;
    let second = snapshot_request(&mut f.scheduler, &distill, "a", 2);
    assert!(f.scheduler.save_snapshot(&second, 5).expect("snapshot"));
    assert!(!f.scheduler.blobs().contains(&first_state), "a replaced state is deleted");

    // Agent a dies: the lease runs out and b takes the task over from iteration 2.
    assert_eq!(f.scheduler.expire(40_000).expect("expire"), 1);
    let resumed = lease(&mut f.scheduler, "b", 40_001).expect("re-leased");
    assert_eq!(resumed.task_id, distill.task_id);
    let state = resumed.snapshot.as_ref().map(|s| s.state_sha256.clone()).expect("a snapshot");
    assert_eq!(resumed.snapshot.as_ref().map(|s| (s.iteration, s.state.is_empty())), Some((2, true)));
    let own = lease_ref(&resumed, "b", &resumed.lease_token);
    assert_eq!(f.scheduler.snapshot_state(&own, 40_001).expect("the state"), state, "served to its leaseholder");
    let former = f.scheduler.snapshot_state(&lease_ref(&resumed, "a", &distill.lease_token), 40_001);
    assert!(former.is_err(), "not to the lost lease: {former:?}");
    let late = snapshot_request(&mut f.scheduler, &distill, "a", 3);
    assert!(!f.scheduler.save_snapshot(&late, 40_002).expect("snapshot"), "the lost lease can no longer save");
    let late_state = late.snapshot.expect("snapshot").state_sha256;
    assert!(!f.scheduler.blobs().contains(&late_state), "and its uploaded state is deleted");
    let mut missing = snapshot_request(&mut f.scheduler, &resumed, "b", 3);
    missing.snapshot.as_mut().expect("snapshot").state_sha256 = sha256_hex(b"never uploaded");
    assert!(matches!(f.scheduler.save_snapshot(&missing, 40_003), Err(SchedulerError::InvalidArgument(_))));

    f.scheduler
        .check_lease(&lease_ref(&resumed, "b", &resumed.lease_token), 40_004)
        .expect("the live lease may upload");
    let stale = f.scheduler.check_lease(&lease_ref(&resumed, "b", &distill.lease_token), 40_004);
    assert!(matches!(stale, Err(SchedulerError::NotLeased { .. })), "{stale:?}");
    let early = f.scheduler.complete(distill_done(&resumed, "b"), 40_004).expect("complete");
    assert!(early.accepted, "a completion is accepted, as a failed attempt");
    let status = f.scheduler.status(Some(&f.sweep), 40_005).expect("status").sweeps.remove(0);
    let codes: Vec<_> = status.errors.iter().filter_map(|e| e.failure.as_ref()).map(|e| e.code.as_str()).collect();
    assert!(codes.is_empty() && status.pending == 3, "retried: {codes:?} {status:?}");
    let resumed = lease(&mut f.scheduler, "b", 45_000).expect("retried after the backoff");
    upload_distilled(&f.scheduler);
    assert!(f.scheduler.complete(distill_done(&resumed, "b"), 45_001).expect("complete").accepted);
    let digest = f.scheduler.output(&distill.task_id).expect("the set is served");
    assert_eq!(digest, sha256_hex(SET));
    assert!(!f.scheduler.blobs().contains(&state), "the finished task's snapshot state is deleted");
    let train = lease(&mut f.scheduler, "b", 45_002).expect("the train task is leasable now");
    let Some(task_spec::Kind::Train(spec)) = train.spec.as_ref().and_then(|s| s.kind.as_ref()) else {
        panic!("not a train task")
    };
    match spec.source.as_ref().and_then(|s| s.source.as_ref()) {
        Some(distilled_source::Source::Distilled(output)) => assert_eq!(output.distill_task_id, distill.task_id),
        other => panic!("the train task reads {other:?}"),
    }
    assert_eq!(f.scheduler.counters().values().distills_completed, 1);
}

#[test]
fn a_failed_distill_task_fails_its_train_and_attack_tasks() {
    let mut f = distill_fixture();
    let distill = lease(&mut f.scheduler, "a", 1).expect("the distill task");
    let snapshot = snapshot_request(&mut f.scheduler, &distill, "a", 1);
    assert!(f.scheduler.save_snapshot(&snapshot, 2).expect("snapshot"));
    // An upload nothing came to name (the agent failed between uploading and completing).
    let stray = b"a set never completed";
    f.scheduler.blobs().put(&sha256_hex(stray), stray).expect("upload");
    f.scheduler.record_upload(&lease_ref(&distill, "a", &distill.lease_token), &sha256_hex(stray)).expect("recorded");
    let invalid = TaskFailure::permanent("invalid_spec", "no such dataset here");
    f.scheduler.complete(failed(&distill, invalid), 2).expect("complete");
    let status = f.scheduler.status(Some(&f.sweep), 3).expect("status").sweeps.remove(0);
    assert_eq!((status.state.as_str(), status.failed, status.total), ("completed", 3, 3));
    let codes: Vec<_> = status.errors.iter().filter_map(|e| e.failure.as_ref()).map(|f| f.code.as_str()).collect();
    assert_eq!(codes.iter().filter(|code| **code == codes::DEPENDENCY_FAILED).count(), 2, "{codes:?}");
    assert!(!f.scheduler.blobs().contains(&sha256_hex(stray)), "the failed task's stray upload is deleted");
    let state = snapshot.snapshot.expect("snapshot").state_sha256;
    assert!(f.scheduler.blobs().contains(&state), "its snapshot stays, for a resubmitted sweep to resume from");
}
