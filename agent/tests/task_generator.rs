//! A task's own generator draws what libtorch's default generator draws after `manual_seed`
//! with the same seed, so owning the generator changed no number. This is its own test binary
//! (its own process) because the comparison needs the default generator with no other test
//! drawing from it in between.

use beard_agent::random::TaskGenerator;
use tch::{Device, Kind, Tensor};

fn bits(tensor: &Tensor) -> Vec<u32> {
    let floats = Vec::<f32>::try_from(tensor.to_kind(Kind::Float).flatten(0, -1)).expect("floats");
    floats.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn a_task_generator_draws_the_default_generators_stream_after_manual_seed() {
    let like = Tensor::zeros([3, 5, 7], (Kind::Float, Device::Cpu));
    for seed in [0, 11, u64::from(u32::MAX)] {
        let generator = TaskGenerator::seeded(seed, Device::Cpu).expect("generator");
        let ours = [
            generator.uniform_like(&like, -0.25, 0.25).expect("uniform"),
            generator.normal_like(&like, 0.0, 1.0).expect("normal"),
            generator.randint(1, 10, &[40]).expect("randint"),
        ];
        tch::manual_seed(seed as i64);
        let theirs = [
            like.empty_like().uniform_(-0.25, 0.25),
            like.empty_like().normal_(0.0, 1.0),
            Tensor::randint_low(1, 10, [40], (Kind::Int64, Device::Cpu)),
        ];
        for (ours, theirs) in ours.iter().zip(&theirs) {
            assert_eq!((ours.kind(), ours.size()), (theirs.kind(), theirs.size()));
            assert_eq!(bits(ours), bits(theirs), "seed {seed}");
        }
        assert!(bits(&ours[0]).iter().any(|&x| x != bits(&ours[0])[0]), "the draws vary");
    }
}
