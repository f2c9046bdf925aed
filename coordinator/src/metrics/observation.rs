//! One setting's inputs to the metrics ([`SettingObservation`]), its scores ([`evaluate`],
//! [`single_adversary`]) and the paper's pooling of several IPCs into one observation
//! ([`pool_across_ipcs`]).

use serde::Serialize;

use super::formulas::{attack_efficiency, crei, robustness_ratio, single_efficiency, single_robustness};
use super::options::{MetricOptions, RrVariant};
use super::stats::{max, mean, min};

/// One attack's result in a setting: robust accuracy (percent) and time (time-basis units).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AttackObservation {
    pub robust_accuracy: f64,
    pub time: f64,
}

/// Everything the metrics need about one setting (dataset, method, IPC, targeted or not), with
/// accuracies already averaged over seeds: clean accuracy c (percent), clean time t_c and one
/// entry per attack.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SettingObservation {
    pub clean_accuracy: f64,
    pub clean_time: f64,
    pub attacks: Vec<AttackObservation>,
}

impl SettingObservation {
    fn robust_accuracies(&self) -> Vec<f64> {
        self.attacks.iter().map(|attack| attack.robust_accuracy).collect()
    }

    fn times(&self) -> Vec<f64> {
        self.attacks.iter().map(|attack| attack.time).collect()
    }
}

/// The multi-adversary scores of a setting, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scores {
    pub rr: f64,
    pub ae: f64,
    pub crei: f64,
}

/// The single-adversary scores of one attack in a setting, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SingleScores {
    pub rrs: f64,
    pub aes: f64,
}

/// RR (in the options' variant), AE and CREI (with the options' alpha) of a setting.
pub fn evaluate(observation: &SettingObservation, options: &MetricOptions) -> Scores {
    let rr = robustness_ratio(observation.clean_accuracy, &observation.robust_accuracies(), options.rr_variant);
    let ae = attack_efficiency(observation.clean_time, &observation.times());
    Scores { rr, ae, crei: crei(rr, ae, options.alpha) }
}

/// RRS_i and AES_i of every attack of a setting, in the order of `observation.attacks`; their
/// means are the RR and AE of [`evaluate`].
pub fn single_adversary(observation: &SettingObservation, variant: RrVariant) -> Vec<SingleScores> {
    let min_robust = min(&observation.robust_accuracies());
    let max_time = max(&observation.times());
    observation
        .attacks
        .iter()
        .map(|attack| SingleScores {
            rrs: single_robustness(observation.clean_accuracy, attack.robust_accuracy, min_robust, variant),
            aes: single_efficiency(observation.clean_time, attack.time, max_time),
        })
        .collect()
}

/// One observation for several IPCs of a (dataset, method, mode): c and t_c are the means over
/// the IPCs, and the attacks of all IPCs are pooled into one list. No observations give the empty
/// observation (scores 0).
pub fn pool_across_ipcs(observations: &[SettingObservation]) -> SettingObservation {
    let cleans: Vec<f64> = observations.iter().map(|setting| setting.clean_accuracy).collect();
    let clean_times: Vec<f64> = observations.iter().map(|setting| setting.clean_time).collect();
    SettingObservation {
        clean_accuracy: mean(&cleans),
        clean_time: mean(&clean_times),
        attacks: observations.iter().flat_map(|setting| setting.attacks.iter().copied()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(left: f64, right: f64) -> bool {
        (left - right).abs() < 1e-9
    }

    fn observation(clean: f64, clean_time: f64, attacks: &[(f64, f64)]) -> SettingObservation {
        SettingObservation {
            clean_accuracy: clean,
            clean_time,
            attacks: attacks
                .iter()
                .map(|&(robust_accuracy, time)| AttackObservation { robust_accuracy, time })
                .collect(),
        }
    }

    fn options(alpha: f64, rr_variant: RrVariant) -> MetricOptions {
        MetricOptions { alpha, rr_variant, ..MetricOptions::default() }
    }

    #[test]
    fn evaluate_hand_worked_setting() {
        // c = 80, a = [60, 40, 20] -> RR 33.333; t_c = 2, t = [4, 10, 6] -> AE 58.333;
        // CREI(0.5) = 45.833.
        let setting = observation(80.0, 2.0, &[(60.0, 4.0), (40.0, 10.0), (20.0, 6.0)]);
        let scores = evaluate(&setting, &MetricOptions::default());
        assert!(close(scores.rr, 100.0 / 3.0));
        assert!(close(scores.ae, 175.0 / 3.0));
        assert!(close(scores.crei, 275.0 / 6.0));

        // I-RR 62.5 (see formulas); alpha 1 keeps only RR, alpha 0 only AE.
        let scores = evaluate(&setting, &options(1.0, RrVariant::IRr));
        assert!(close(scores.rr, 62.5));
        assert!(close(scores.crei, 62.5));
        let scores = evaluate(&setting, &options(0.0, RrVariant::Beard));
        assert!(close(scores.crei, 175.0 / 3.0));
    }

    #[test]
    fn rrm_and_aem_are_means_of_single_adversary_scores() {
        let setting = observation(71.3, 0.4, &[(55.1, 2.5), (12.9, 30.0), (3.2, 41.7), (60.0, 0.9)]);
        for variant in [RrVariant::Beard, RrVariant::IRr] {
            let scores = evaluate(&setting, &options(0.5, variant));
            let singles = single_adversary(&setting, variant);
            assert_eq!(singles.len(), setting.attacks.len());
            let rrs: Vec<f64> = singles.iter().map(|single| single.rrs).collect();
            let aes: Vec<f64> = singles.iter().map(|single| single.aes).collect();
            assert!(close(mean(&rrs), scores.rr));
            assert!(close(mean(&aes), scores.ae));
        }
    }

    #[test]
    fn single_adversary_of_degenerate_setting_is_zero() {
        let setting = observation(40.0, 1.0, &[(40.0, 1.0), (40.0, 1.0)]);
        let singles = single_adversary(&setting, RrVariant::Beard);
        assert!(singles.iter().all(|single| single.rrs == 0.0 && single.aes == 0.0));
        assert_eq!(single_adversary(&SettingObservation::default(), RrVariant::Beard), vec![]);
    }

    #[test]
    fn pooling_averages_clean_values_and_pools_attacks() {
        // IPC 1: c = 30, t_c = 1; IPC 10: c = 50, t_c = 3.
        let ipc1 = observation(30.0, 1.0, &[(20.0, 3.0), (10.0, 5.0)]);
        let ipc10 = observation(50.0, 3.0, &[(40.0, 4.0), (30.0, 9.0)]);
        let pooled = pool_across_ipcs(&[ipc1, ipc10]);
        assert_eq!(pooled.clean_accuracy, 40.0);
        assert_eq!(pooled.clean_time, 2.0);
        assert_eq!(pooled.attacks.len(), 4);
        // a = [20, 10, 40, 30]: mean 25, min 10 -> RR = 100 (1 - 15/30) = 50.
        // t = [3, 5, 4, 9]: mean 5.25, max 9 -> AE = 100 * 3.25 / 7 = 46.428571...
        let scores = evaluate(&pooled, &MetricOptions::default());
        assert!(close(scores.rr, 50.0));
        assert!(close(scores.ae, 325.0 / 7.0));
        assert!(close(scores.crei, (50.0 + 325.0 / 7.0) / 2.0));
    }

    #[test]
    fn pooling_nothing_or_one_setting() {
        assert_eq!(pool_across_ipcs(&[]), SettingObservation::default());
        let one = observation(30.0, 1.0, &[(20.0, 3.0)]);
        assert_eq!(pool_across_ipcs(std::slice::from_ref(&one)), one);
    }
}
