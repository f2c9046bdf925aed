//! Training through the backend: it learns, it is reproducible, it reports and honours
//! cancellation.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use beard_agent::backend::{Backend, TaskContext};
use beard_agent::tch_backend::TchBackend;
use beard_proto::v1::{ErrorClass, Optimizer, TrainingConfig};
use tch::{Device, Kind};

#[test]
fn ipc10_random_subset_beats_chance_clearly_on_the_test_split() {
    let started = Instant::now();
    let trained = common::trained(0, 30);
    let test = &trained.dataset.test;
    let logits = trained.model.forward(&test.images, false).expect("forward");
    let correct = logits.argmax(1, false).eq_tensor(&test.labels).to_kind(Kind::Float).mean(Kind::Float);
    let accuracy = 100.0 * correct.double_value(&[]);
    println!("synthetic IPC-10, width 16, 30 epochs: test accuracy {accuracy:.1}% ({:.1?})", started.elapsed());
    assert!(accuracy > 40.0, "test accuracy {accuracy:.1}% is not clearly above the 10% chance level");
    assert!(accuracy < 100.0, "synthetic should not be trivially separable");
}

#[test]
fn training_reports_and_is_reproducible_per_seed() {
    let mut backend = TchBackend::new(Device::Cpu);
    let messages = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&messages);
    let ctx = TaskContext::new(move |m| sink.lock().expect("lock").push(m), Arc::new(AtomicBool::new(false)));
    let first = backend.train(&common::train_spec(5, 3), &ctx).expect("train");
    let again = backend.train(&common::train_spec(5, 3), &TaskContext::detached()).expect("train");
    let other = backend.train(&common::train_spec(6, 3), &TaskContext::detached()).expect("train");
    assert_eq!(first.checkpoint_sha256, again.checkpoint_sha256);
    assert_ne!(first.checkpoint_sha256, other.checkpoint_sha256);
    assert_eq!(first.checkpoint_sha256, beard_proto::keys::sha256_hex(&first.checkpoint));
    assert_eq!(first.train_images, 100);
    assert!(first.final_loss.is_finite() && first.final_loss > 0.0);
    assert!(first.device.starts_with("cpu"));
    assert_eq!(messages.lock().expect("lock").last().map(String::as_str), Some("epoch 3/3"));
}

#[test]
fn sgd_with_momentum_and_weight_decay_lowers_the_loss_and_uses_both() {
    let train = |epochs: u32, momentum: f64, weight_decay: f64| {
        let mut spec = common::train_spec(1, epochs);
        spec.training = Some(TrainingConfig {
            optimizer: Optimizer::Sgd as i32,
            lr: 0.01,
            momentum,
            weight_decay,
            epochs,
            batch_size: 256,
            ..Default::default()
        });
        TchBackend::new(Device::Cpu).train(&spec, &TaskContext::detached()).expect("train")
    };
    let first = train(1, 0.9, 5e-4);
    let trained = train(40, 0.9, 5e-4);
    println!(
        "SGD (momentum 0.9, weight decay 5e-4): loss {:.3} after 1 epoch, {:.3} after 40",
        first.final_loss, trained.final_loss
    );
    assert!(
        trained.final_loss < 0.8 * first.final_loss,
        "the loss falls: {} then {}",
        first.final_loss,
        trained.final_loss
    );
    let without_momentum = train(40, 0.0, 5e-4);
    let without_decay = train(40, 0.9, 0.0);
    assert_ne!(trained.checkpoint_sha256, without_momentum.checkpoint_sha256, "momentum changes the weights");
    assert_ne!(trained.checkpoint_sha256, without_decay.checkpoint_sha256, "weight decay changes the weights");
}

#[test]
fn cancelled_training_stops_with_the_cancelled_failure() {
    let ctx = TaskContext::new(|_| {}, Arc::new(AtomicBool::new(true)));
    let failure = TchBackend::new(Device::Cpu).train(&common::train_spec(0, 1000), &ctx).expect_err("cancelled");
    assert_eq!(failure, beard_agent::backend::cancelled());
}

#[test]
fn bad_training_specs_fail_permanently() {
    let mut backend = TchBackend::new(Device::Cpu);
    let mut zero_epochs = common::train_spec(0, 0);
    zero_epochs.ipc = 10;
    let mut too_many = common::train_spec(0, 1);
    too_many.ipc = 501;
    let mut no_model = common::train_spec(0, 1);
    no_model.model = None;
    for spec in [zero_epochs, too_many, no_model] {
        let failure = backend.train(&spec, &TaskContext::detached()).expect_err("invalid");
        assert_eq!((failure.class(), failure.code.as_str()), (ErrorClass::Permanent, "invalid_spec"), "{failure}");
    }
}
