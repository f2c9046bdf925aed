//! IDM (uitrbn/IDM `IDM_cifar10.py`) and BACON (zhouzhengqd/BACON `BACON_cifar10.py`, the same
//! code with another matching term), with the flags of their `command.txt` (the same but for
//! BACON's 50 queue steps on CIFAR-100 at IPC 50).
//!
//! The synthetic images are [`mosaic`]s, decoded to four images per stored one wherever they are
//! matched or trained on; `init: real` is the partition-and-expansion start ([`Start::Mosaic`]).
//! A queue of ConvNets trains along the way: it starts with three fresh nets, takes a fresh one
//! every `net_generate_interval` iterations (dropping its oldest beyond `net_num`), and each net
//! has its own SGD (lr_net, momentum 0.9, weight decay 5e-4) and a meter of its running accuracy
//! on the real batches it trains on, reset every `eval_interval` iterations (where the reference
//! evaluates). Each iteration:
//!
//! 1. `train_net_num` random nets of the queue each match every class in turn: the class's real
//!    batch and its decoded synthetic images under one siamese DSA draw, and
//!    `loss_c = term(embed(real), embed(syn)) + ce_weight * accuracy% * CE(net(syn), c)`, the
//!    accuracy being that net's meter in percent (0 before it trained), with **one image step
//!    per class**. The term is DM's squared distance of the mean embeddings (IDM) or BACON's
//!    ([`bacon_term`]).
//! 2. `fetch_net_num` random nets of the queue take `model_train_steps` SGD steps each on random
//!    real batches of `trained_bs` images of all classes.
//!
//! The reference keeps the set of its best evaluation point (selected on the test set); this run
//! ends with the last set, and the sweep's train tasks evaluate it. A snapshot holds the set, its
//! momentum and the queue (every net's weights, momentum buffers and meter), so a resumed run
//! ends with the set an uninterrupted one learns.

use std::collections::VecDeque;
use std::f64::consts::PI;

use beard_formats::state_dict::StateDict;
use beard_formats::torchfile::Dtype;
use beard_proto::distillation::idm_official;
use beard_proto::v1::IdmConfig;
use tch::{Device, Kind, Reduction, TchError, Tensor};

use super::dm::mean_distance;
use super::{DistillError, Distilled, Matching, Prepared, Run, Start, encode_state, fresh_net, purpose};
use crate::data::mosaic;
use crate::data::rng::{Rng, streams};
use crate::host_tensor;
use crate::model::{ConvNet, ConvNetConfig};

/// The matching term of a method of this family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Term {
    /// IDM: DM's squared distance between the mean embeddings.
    Mean,
    /// BACON: [`bacon_term`].
    Bacon,
}

/// IDM's and BACON's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IdmSettings {
    /// `start: Real` is read as [`Start::Mosaic`].
    pub matching: Matching,
    pub term: Term,
    pub ce_weight: f64,
    pub net_num: u32,
    pub net_generate_interval: u32,
    pub train_net_num: u32,
    pub fetch_net_num: u32,
    pub model_train_steps: u32,
    pub trained_bs: u32,
    pub lr_net: f64,
    pub eval_interval: u32,
}

/// The queue nets' SGD: momentum and weight decay (`--net_decay`).
const NET_MOMENTUM: f64 = 0.9;
const NET_WEIGHT_DECAY: f64 = 5e-4;
/// Nets the queue starts with.
const FIRST_NETS: u64 = 3;

impl IdmSettings {
    /// The official command for `dataset` (a sweep's dataset name) at `ipc`: 20,000
    /// iterations, lr_img 0.2, momentum 0.5, siamese DSA, the mosaic start, a queue of up to 100
    /// nets of which 1 matches and 2 train per iteration, batches of 256, lr_net 0.01, and the
    /// settings [`idm_official`] gives for the dataset and IPC.
    pub fn official(dataset: &str, ipc: u32, term: Term) -> Self {
        let by_ipc = idm_official(dataset, ipc, term == Term::Bacon);
        let matching = Matching {
            iterations: 20_000,
            batch_real: by_ipc.batch_real,
            lr_img: 0.2,
            momentum: 0.5,
            dsa: true,
            start: Start::Mosaic,
        };
        Self {
            matching,
            term,
            ce_weight: by_ipc.ce_weight,
            net_num: 100,
            net_generate_interval: by_ipc.net_generate_interval,
            train_net_num: 1,
            fetch_net_num: 2,
            model_train_steps: by_ipc.model_train_steps,
            trained_bs: 256,
            lr_net: 0.01,
            eval_interval: by_ipc.eval_interval,
        }
    }

    /// The settings a task's config gives.
    pub fn from_config(config: &IdmConfig) -> Result<Self, DistillError> {
        let matching =
            config.matching.as_ref().ok_or_else(|| DistillError::Invalid("IDM without matching settings".into()))?;
        let mut matching = Matching::from(matching);
        if matching.start == Start::Real {
            matching.start = Start::Mosaic;
        }
        Ok(Self {
            matching,
            term: if config.bacon { Term::Bacon } else { Term::Mean },
            ce_weight: config.ce_weight.ok_or_else(|| DistillError::Invalid("IDM without ce_weight".into()))?,
            net_num: config.net_num,
            net_generate_interval: config.net_generate_interval,
            train_net_num: config.train_net_num,
            fetch_net_num: config.fetch_net_num,
            model_train_steps: config.model_train_steps,
            trained_bs: config.trained_bs,
            lr_net: config.lr_net,
            eval_interval: config.eval_interval,
        })
    }
}

/// BACON's matching term between real features `[n, d]` (no gradient) and synthetic ones
/// `[m, d]`, with `mu` the mean features and `s` the (unbiased) standard deviation of each
/// real feature:
///
/// - the Gaussian negative log-likelihood of `mu_syn` under `N(mu_real, exp(s))`, in log form,
///   `sum_d [ log(2 pi) / 2 + s_d + ((mu_syn - mu_real) exp(-s_d))^2 / 2 ]` (the reference takes
///   the density's exp and then its log, which gives infinity where the density underflows);
/// - plus 0.8 x the total variation `sum_d |mu_syn - mu_real| / 2`;
/// - plus 0.2 x the reference's clip term on the softmax of the mean features, kept as written:
///   it compares the means of two probability vectors, both 1/d, so it is 0 up to rounding.
pub fn bacon_term(real: &Tensor, synthetic: &Tensor) -> Result<Tensor, TchError> {
    let real_mean = real.f_mean_dim(0, false, None)?;
    let synthetic_mean = synthetic.f_mean_dim(0, false, None)?;
    let spread = real.f_std_dim(0, true, false)?;
    let difference = synthetic_mean.f_sub(&real_mean)?;
    let standardized = difference.f_mul(&spread.f_neg()?.f_exp()?)?;
    let nll =
        standardized.f_square()?.f_mul_scalar(0.5)?.f_add(&spread)?.f_add_scalar(0.5 * (2.0 * PI).ln())?.f_sum(None)?;
    let total_variation = difference.f_abs()?.f_sum(None)?.f_mul_scalar(0.5)?;
    let clip = clip_term(&synthetic_mean.f_softmax(-1, None)?, &real_mean.f_softmax(-1, None)?)?;
    nll.f_add(&total_variation.f_mul_scalar(0.8)?)?.f_add(&clip.f_mul_scalar(0.2)?)
}

/// The reference's `clip_function(x, y)` on two vectors: `u = (mean x - mean y) / std y`, then
/// the square of `u`'s distance to [0, 1].
fn clip_term(synthetic: &Tensor, real: &Tensor) -> Result<Tensor, TchError> {
    let unnormalized = synthetic.f_mean(None)?.f_sub(&real.f_mean(None)?)?.f_div(&real.f_std(true)?)?;
    unnormalized.f_sub(&unnormalized.f_clamp(0.0, 1.0)?)?.f_square()
}

/// One net of the queue: its weights, its SGD momentum buffers (after its first step), and its
/// accuracy meter since the last reset.
struct QueueNet {
    net: ConvNet,
    momentum: Option<Vec<Tensor>>,
    correct: i64,
    seen: i64,
}

impl QueueNet {
    fn new(net: ConvNet) -> Self {
        Self { net, momentum: None, correct: 0, seen: 0 }
    }

    /// The meter in percent, 0 before it counted anything (torchnet's `ClassErrorMeter`).
    fn accuracy_percent(&self) -> f64 {
        if self.seen == 0 { 0.0 } else { 100.0 * self.correct as f64 / self.seen as f64 }
    }

    /// One step of `torch.optim.SGD(lr, momentum 0.9, weight_decay 5e-4)` on the mean
    /// cross-entropy of `images`, counting its hits in the meter.
    fn train_step(&mut self, images: &Tensor, labels: &Tensor, lr: f64) -> Result<(), TchError> {
        let logits = self.net.forward(images, true)?;
        let loss = logits.f_cross_entropy_loss(labels, None::<Tensor>, Reduction::Mean, -100, 0.0)?;
        let parameters = self.net.trainable_variables();
        let gradients = Tensor::f_run_backward(&[&loss], &parameters, false, false)?;
        tch::no_grad(|| -> Result<(), TchError> {
            let mut buffers = Vec::with_capacity(parameters.len());
            for (index, (parameter, gradient)) in parameters.iter().zip(&gradients).enumerate() {
                let step = gradient.f_add(&parameter.f_mul_scalar(NET_WEIGHT_DECAY)?)?;
                let buffer = match &self.momentum {
                    None => step,
                    Some(buffers) => buffers[index].f_mul_scalar(NET_MOMENTUM)?.f_add(&step)?,
                };
                let _ = parameter.shallow_clone().f_sub_(&buffer.f_mul_scalar(lr)?)?;
                buffers.push(buffer);
            }
            self.momentum = Some(buffers);
            Ok(())
        })?;
        self.correct += logits.f_argmax(1, false)?.f_eq_tensor(labels)?.f_sum(Kind::Int64)?.f_int64_value(&[])?;
        self.seen += labels.size()[0];
        Ok(())
    }
}

/// The queue of trained nets, oldest first.
struct Queue {
    nets: VecDeque<QueueNet>,
}

impl Queue {
    /// The three fresh nets the queue starts with: iteration 0's draws `[0, 1..=3]`.
    fn start(model: &ConvNetConfig, seed: u64, device: Device) -> Result<Self, DistillError> {
        let nets = (1..=FIRST_NETS).map(|k| Ok(QueueNet::new(fresh_net(model, seed, &[0, k], device)?)));
        Ok(Self { nets: nets.collect::<Result<_, DistillError>>()? })
    }

    /// Iteration `iteration`'s fresh net (its draw `[iteration, 0]`), dropping the oldest when
    /// the queue holds `capacity` already.
    fn push(
        &mut self,
        model: &ConvNetConfig,
        seed: u64,
        iteration: u32,
        capacity: u32,
        device: Device,
    ) -> Result<(), DistillError> {
        if self.nets.len() >= capacity as usize {
            self.nets.pop_front();
        }
        self.nets.push_back(QueueNet::new(fresh_net(model, seed, &[u64::from(iteration), 0], device)?));
        Ok(())
    }

    /// `count` queue positions drawn without replacement from the stream `[DISTILL, purpose,
    /// iteration]`.
    fn draw(&self, seed: u64, purpose: u64, iteration: u32, count: u32) -> Vec<usize> {
        let mut positions: Vec<usize> = (0..self.nets.len()).collect();
        Rng::stream(seed, &[streams::DISTILL, purpose, u64::from(iteration)]).shuffle(&mut positions);
        positions.truncate(count as usize);
        positions
    }

    fn reset_meters(&mut self) {
        for net in &mut self.nets {
            (net.correct, net.seen) = (0, 0);
        }
    }

    /// The queue's part of a snapshot: `queue.{i}.param.{j}`, `queue.{i}.momentum.{j}` and
    /// `queue.{i}.meter` (correct, seen) for the `i`-th net from the oldest.
    fn state(&self) -> Result<StateDict, TchError> {
        let mut tensors = Vec::new();
        for (position, queued) in self.nets.iter().enumerate() {
            for (index, parameter) in queued.net.trainable_variables().iter().enumerate() {
                tensors.push((format!("queue.{position}.param.{index}"), host_tensor::from_tensor(parameter)?));
            }
            for (index, buffer) in queued.momentum.iter().flatten().enumerate() {
                tensors.push((format!("queue.{position}.momentum.{index}"), host_tensor::from_tensor(buffer)?));
            }
            let meter = Tensor::f_from_slice(&[queued.correct, queued.seen])?;
            tensors.push((format!("queue.{position}.meter"), host_tensor::from_tensor(&meter)?));
        }
        Ok(tensors)
    }

    /// The queue a [`Self::state`] describes, for nets shaped as `model`.
    fn restore(tensors: StateDict, model: &ConvNetConfig, device: Device) -> Result<Self, DistillError> {
        let invalid = |message: String| DistillError::Snapshot(message);
        let mut nets: Vec<(QueueNet, Vec<Option<Tensor>>)> = Vec::new();
        for (name, stored) in tensors {
            let fields: Vec<&str> = name.split('.').collect();
            let (position, field, index) = match fields.as_slice() {
                ["queue", position, field] => (position.parse::<usize>().ok(), *field, None),
                ["queue", position, field, index] => {
                    (position.parse::<usize>().ok(), *field, index.parse::<usize>().ok())
                }
                _ => (None, "", None),
            };
            let position = position.ok_or_else(|| invalid(format!("unexpected tensor {name:?}")))?;
            while nets.len() <= position {
                let mut net = ConvNet::new(model, 0, device)?;
                net.take_normalizer();
                let slots = (0..net.trainable_variables().len()).map(|_| None).collect();
                nets.push((QueueNet::new(net), slots));
            }
            let (queued, momentum) = &mut nets[position];
            let tensor = host_tensor::to_tensor(&stored)?.f_to(device)?;
            match (field, index) {
                ("meter", None) if stored.dtype == Dtype::I64 && stored.shape == [2] => {
                    (queued.correct, queued.seen) = (tensor.f_int64_value(&[0])?, tensor.f_int64_value(&[1])?);
                }
                ("param", Some(index)) => {
                    let parameters = queued.net.trainable_variables();
                    let parameter =
                        parameters.get(index).ok_or_else(|| invalid(format!("{name:?}: no such parameter")))?;
                    if parameter.size() != tensor.size() {
                        return Err(invalid(format!(
                            "{name:?} is {:?}, the net's is {:?}",
                            tensor.size(),
                            parameter.size()
                        )));
                    }
                    tch::no_grad(|| parameter.shallow_clone().f_copy_(&tensor))?;
                }
                ("momentum", Some(index)) if index < momentum.len() => momentum[index] = Some(tensor),
                _ => return Err(invalid(format!("unexpected tensor {name:?}"))),
            }
        }
        let nets = nets
            .into_iter()
            .map(|(mut queued, momentum)| {
                if momentum.iter().all(Option::is_some) {
                    queued.momentum = Some(momentum.into_iter().flatten().collect());
                } else if momentum.iter().any(Option::is_some) {
                    return Err(invalid("a queue net's momentum buffers are incomplete".into()));
                }
                Ok(queued)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { nets })
    }
}

/// Distils `run`'s set with IDM or BACON. Reports `iteration i/n: loss l` (the summed class
/// losses over the classes, as the reference logs them) after every iteration and offers
/// snapshots as its context asks.
pub fn distill(run: &Run, settings: &IdmSettings) -> Result<Distilled, DistillError> {
    let counts = [
        settings.net_num,
        settings.net_generate_interval,
        settings.train_net_num,
        settings.trained_bs,
        settings.eval_interval,
    ];
    if counts.contains(&0) {
        return Err(DistillError::Invalid(
            "net_num, net_generate_interval, train_net_num, trained_bs and eval_interval must be at least 1".into(),
        ));
    }
    let (_, _, height, width) = run.train.images.size4()?;
    if height % 2 != 0 || width % 2 != 0 {
        return Err(DistillError::Invalid(format!("mosaics need even image sides, not {height} x {width}")));
    }
    let (Prepared { batches, mut synthetic, resumed_from }, rest) = run.prepare_with_state(&settings.matching)?;
    let device = run.train.images.device();
    let mut queue = match run.resume {
        None => Queue::start(run.model, run.seed, device)?,
        Some(_) => Queue::restore(rest, run.model, device)?,
    };
    let classes = run.dataset.classes;
    let Matching { iterations, lr_img, momentum, .. } = settings.matching;
    let mut final_loss = f64::NAN;
    for iteration in resumed_from..iterations {
        if run.ctx.is_cancelled() {
            return Err(DistillError::Cancelled);
        }
        if iteration > 0 && iteration % settings.eval_interval == 0 {
            queue.reset_meters();
        }
        if iteration % settings.net_generate_interval == 0 {
            queue.push(run.model, run.seed, iteration, settings.net_num, device)?;
        }
        let mut loss_sum = Tensor::f_zeros([], (Kind::Float, device))?;
        for (picked, position) in
            queue.draw(run.seed, purpose::PICK, iteration, settings.train_net_num).into_iter().enumerate()
        {
            let queued = &queue.nets[position];
            let weight = settings.ce_weight * queued.accuracy_percent();
            for class in 0..classes {
                let decoded = mosaic::decode(&synthetic.class(class)?)?;
                let step = [u64::from(iteration), picked as u64];
                let (real, fake) = batches.pair(&step, class, decoded)?;
                let loss = class_loss(&queued.net, settings.term, &real, &fake, class, weight)?;
                synthetic.descend(&loss, lr_img, momentum)?;
                loss_sum = loss_sum.f_add(&loss.f_detach()?)?;
            }
        }
        for (fetched, position) in
            queue.draw(run.seed, purpose::FETCH, iteration, settings.fetch_net_num).into_iter().enumerate()
        {
            for step in 0..settings.model_train_steps {
                let key =
                    [streams::DISTILL, purpose::QUEUE_BATCH, u64::from(iteration), fetched as u64, u64::from(step)];
                let (images, labels) = batches.mixed(settings.trained_bs as usize, &mut Rng::stream(run.seed, &key))?;
                queue.nets[position].train_step(&images, &labels, settings.lr_net)?;
            }
        }
        final_loss = loss_sum.f_double_value(&[])? / classes as f64;
        let state = || {
            let mut tensors = synthetic.state_tensors()?;
            tensors.extend(queue.state()?);
            encode_state(&tensors)
        };
        run.finish_iteration(iteration + 1, iterations, Some(final_loss), state)?;
    }
    Ok(Distilled { set: synthetic, final_loss, resumed_from })
}

/// One class's loss on one queue net: the matching term of the real and the synthetic features,
/// plus `weight` x the cross-entropy of the synthetic images (the net in evaluation mode).
fn class_loss(
    net: &ConvNet,
    term: Term,
    real: &Tensor,
    synthetic: &Tensor,
    class: usize,
    weight: f64,
) -> Result<Tensor, TchError> {
    let real_features = tch::no_grad(|| net.embed(real, false))?;
    let synthetic_features = net.embed(synthetic, false)?;
    let matching = match term {
        Term::Mean => mean_distance(&real_features, &synthetic_features)?,
        Term::Bacon => bacon_term(&real_features, &synthetic_features)?,
    };
    if weight == 0.0 {
        return Ok(matching);
    }
    let logits = net.classify(&synthetic_features)?;
    let labels = Tensor::f_full([logits.size()[0]], class as i64, (Kind::Int64, logits.device()))?;
    let cross_entropy = logits.f_cross_entropy_loss(&labels, None::<Tensor>, Reduction::Mean, -100, 0.0)?;
    matching.f_add(&cross_entropy.f_mul_scalar(weight)?)
}
