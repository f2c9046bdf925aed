//! Access control and input hygiene at the coordinator's gRPC boundary: no call without the
//! right token, no tampered checkpoint accepted, no upload without a live lease or with broken
//! chunks, no path traversal through digests, no oversized messages.

mod common;

use beard_proto::auth::Token;
use beard_proto::v1::{
    BlobHeader, CompleteRequest, FetchOutputRequest, LeaseRef, LeaseRequest, RegisterRequest, SubmitRequest,
    TrainResult, complete_request,
};
use common::*;
use tonic::Code;

fn register_request(name: &str) -> RegisterRequest {
    RegisterRequest {
        protocol_version: beard_proto::PROTOCOL_VERSION,
        agent_name: name.into(),
        generation: format!("{name}-generation"),
        device: "cpu".into(),
        replaces_generation: String::new(),
    }
}

const SWEEP: &str = "name: security\ndatasets:\n  synthetic: {}\nmethods:\n  random: random\nipc: [1]\n\
                     attacks:\n  fgsm: {}\ntargeted: [false]\nseeds: 1\n";

#[tokio::test(flavor = "multi_thread")]
async fn calls_without_the_token_or_with_a_wrong_one_are_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let coordinator = start_coordinator(dir.path(), 30.0)?;
    let wrong = Token::parse("not-the-token", "test")?;
    for token in [None, Some(&wrong)] {
        let mut agent = agent_client(&coordinator.url, token).await?;
        let register = agent.register(register_request("intruder")).await.expect_err("register refused");
        assert_eq!(register.code(), Code::Unauthenticated);
        let lease = agent.lease(LeaseRequest { agent_name: "intruder".into(), ..Default::default() }).await;
        assert_eq!(lease.expect_err("lease refused").code(), Code::Unauthenticated);
        let complete = agent.complete(CompleteRequest::default()).await.expect_err("complete refused");
        assert_eq!(complete.code(), Code::Unauthenticated);
        let mut control = control_with(&coordinator.url, token).await?;
        let submit = control
            .submit(SubmitRequest { yaml: SWEEP.into(), file_name: "x.yaml".into(), ..Default::default() })
            .await;
        assert_eq!(submit.expect_err("submit refused").code(), Code::Unauthenticated);
    }
    // The right token passes, and nothing the intruders sent was stored.
    let mut control = control(&coordinator).await?;
    let status = control.status(beard_proto::v1::StatusRequest::default()).await?.into_inner();
    assert!(status.sweeps.is_empty());
    let mut agent = agent_client(&coordinator.url, Some(&coordinator.token()?)).await?;
    agent.register(register_request("honest")).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_checkpoints_uploads_snapshot_reads_traversal_digests_and_oversized_messages_are_rejected()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let coordinator = start_coordinator(dir.path(), 30.0)?;
    let token = coordinator.token()?;
    let mut control = control(&coordinator).await?;
    submit(&mut control, SWEEP).await?;
    let mut agent = agent_client(&coordinator.url, Some(&token)).await?;
    let registration = register_request("tamperer");
    agent.register(registration.clone()).await?;
    let lease = LeaseRequest {
        agent_name: registration.agent_name.clone(),
        generation: registration.generation.clone(),
        cached_checkpoints: vec![],
    };
    let task = agent.lease(lease).await?.into_inner().task.expect("the train task");

    // An upload needs a live lease; a refused or broken one leaves no file behind.
    let upload = |lease_token: &str, task_id: &str| {
        let lease = LeaseRef {
            agent_name: registration.agent_name.clone(),
            generation: registration.generation.clone(),
            task_id: task_id.to_owned(),
            lease_token: lease_token.to_owned(),
        };
        BlobHeader { lease: Some(lease), ..Default::default() }
    };
    let junk = beard_proto::blob::chunks(b"junk", upload("not a lease", &task.task_id));
    let status = agent.put_blob(tokio_stream::iter(junk)).await.expect_err("no lease, no upload");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let mut broken = beard_proto::blob::chunks(b"junk", upload(&task.lease_token, &task.task_id));
    broken[0].data.push(b'!');
    let status = agent.put_blob(tokio_stream::iter(broken)).await.expect_err("more bytes than announced");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(std::fs::read_dir(coordinator.state.join("blobs"))?.count(), 0, "nothing was kept");
    // A snapshot's state goes only to its task's leaseholder (and this task has none).
    let stranger = upload("not a lease", &task.task_id).lease.expect("a lease");
    let status = agent.fetch_snapshot(stranger).await.expect_err("no lease, no snapshot");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let own = upload(&task.lease_token, &task.task_id).lease.expect("a lease");
    let status = agent.fetch_snapshot(own).await.expect_err("no snapshot saved");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    // A checkpoint whose bytes do not match the declared digest is not stored.
    let tampered = CompleteRequest {
        task_id: task.task_id.clone(),
        lease_token: task.lease_token.clone(),
        agent_name: registration.agent_name.clone(),
        outcome: Some(complete_request::Outcome::Train(TrainResult {
            checkpoint: b"tampered bytes".to_vec(),
            checkpoint_sha256: beard_proto::keys::sha256_hex(b"original bytes"),
            ..Default::default()
        })),
    };
    agent.complete(tampered).await?;
    let conn = open_state(&coordinator.state)?;
    let results: u32 = conn.query_row("SELECT COUNT(*) FROM results", [], |r| r.get(0))?;
    assert_eq!(results, 0, "the tampered checkpoint was not accepted as a result");
    let code: Vec<u8> = conn.query_row("SELECT failure FROM task_errors LIMIT 1", [], |r| r.get(0))?;
    assert!(String::from_utf8_lossy(&code).contains("corrupt_checkpoint"));
    let blobs = std::fs::read_dir(coordinator.state.join("blobs"))?.count();
    assert_eq!(blobs, 0, "no blob was written");

    // A digest or task id that tries to leave the blob directory is refused.
    for id in ["../../../etc/passwd", "..", &"a".repeat(63), &format!("{}/", "b".repeat(63))] {
        let status =
            agent.fetch_output(FetchOutputRequest { task_id: id.to_owned() }).await.expect_err("traversal refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{id}");
    }

    // Messages above the size limit are refused before they reach the scheduler.
    let huge = "#".repeat(beard_proto::MAX_MESSAGE_BYTES + 1024);
    let status = control
        .submit(SubmitRequest { yaml: huge, file_name: "huge.yaml".into(), ..Default::default() })
        .await
        .expect_err("oversized message refused");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    Ok(())
}
