//! The BEARD formulas on plain numbers: Robustness Ratio (BEARD's RR and the follow-up's I-RR),
//! Attack Efficiency, CREI, and the single-adversary terms `RRS_i` / `AES_i`.
//!
//! The multi-adversary forms are the single-adversary terms evaluated at the mean: RR is RRS at
//! `a_i = mean a` and AE is AES at `t_i = mean t`. Both terms are affine in `a_i` (`t_i`), so RRM
//! and AEM are also the means of the per-attack terms.
//!
//! Degenerate cases give 0 rather than NaN: no attacks; RR when `c == min a`; I-RR when `c == 0`
//! (no clean accuracy, nothing to be robust about); AE when `max t == t_c`. "Equal" allows a
//! relative difference of [`RELATIVE_TOLERANCE`], so that a mean of equal values that rounds by an
//! ulp still counts as equal instead of dividing rounding noise by rounding noise.

use super::options::RrVariant;
use super::stats::{max, mean, min};

/// Largest relative difference at which two accuracies or two times count as equal.
const RELATIVE_TOLERANCE: f64 = 1e-9;

fn coincide(left: f64, right: f64) -> bool {
    (left - right).abs() <= RELATIVE_TOLERANCE * left.abs().max(right.abs())
}

/// Robustness Ratio of clean accuracy `clean` against the robust accuracies of a set of attacks,
/// all in percent; 0 for no attacks and in the degenerate cases of the module documentation.
pub fn robustness_ratio(clean: f64, robust: &[f64], variant: RrVariant) -> f64 {
    if robust.is_empty() {
        return 0.0;
    }
    single_robustness(clean, mean(robust), min(robust), variant)
}

/// The per-attack RR term `RRS_i` of an attack with robust accuracy `robust`, where `min_robust` is
/// the smallest robust accuracy over the setting's attacks. BEARD: `100 (1 - (c - a_i) / (c -
/// min a))`; I-RR: `100 (1 - (c - a_i) (c - min a) / c^2)`.
pub fn single_robustness(clean: f64, robust: f64, min_robust: f64, variant: RrVariant) -> f64 {
    match variant {
        RrVariant::Beard if coincide(clean, min_robust) => 0.0,
        RrVariant::Beard => 100.0 * (1.0 - (clean - robust) / (clean - min_robust)),
        RrVariant::IRr if clean == 0.0 => 0.0,
        RrVariant::IRr => 100.0 * (1.0 - (clean - robust) * (clean - min_robust) / clean.powi(2)),
    }
}

/// Attack Efficiency `100 (mean t - t_c) / (max t - t_c)` of a set of attack times against the
/// clean time; 0 for no attacks or when `max t == t_c`.
pub fn attack_efficiency(clean_time: f64, times: &[f64]) -> f64 {
    if times.is_empty() {
        return 0.0;
    }
    single_efficiency(clean_time, mean(times), max(times))
}

/// The per-attack AE term `AES_i` = `100 (t_i - t_c) / (max t - t_c)`, where `max_time` is the
/// largest time over the setting's attacks; 0 when `max t == t_c`.
pub fn single_efficiency(clean_time: f64, time: f64, max_time: f64) -> f64 {
    if coincide(max_time, clean_time) {
        return 0.0;
    }
    100.0 * (time - clean_time) / (max_time - clean_time)
}

/// CREI = `alpha RR + (1 - alpha) AE`.
pub fn crei(rr: f64, ae: f64, alpha: f64) -> f64 {
    alpha * rr + (1.0 - alpha) * ae
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(left: f64, right: f64) -> bool {
        (left - right).abs() < 1e-9
    }

    // c = 80, a = [60, 40, 20]: mean a = 40, min a = 20.
    const CLEAN: f64 = 80.0;
    const ROBUST: [f64; 3] = [60.0, 40.0, 20.0];
    // t_c = 2, t = [4, 10, 6]: mean t = 20/3, max t = 10.
    const CLEAN_TIME: f64 = 2.0;
    const TIMES: [f64; 3] = [4.0, 10.0, 6.0];

    #[test]
    fn rr_of_hand_worked_numbers() {
        // 100 (1 - (80 - 40) / (80 - 20)) = 100 (1 - 40/60) = 33.333...
        assert!(close(robustness_ratio(CLEAN, &ROBUST, RrVariant::Beard), 100.0 / 3.0));
    }

    #[test]
    fn i_rr_of_hand_worked_numbers() {
        // 100 (1 - (80 - 40) (80 - 20) / 80^2) = 100 (1 - 2400/6400) = 62.5
        assert!(close(robustness_ratio(CLEAN, &ROBUST, RrVariant::IRr), 62.5));
    }

    #[test]
    fn ae_of_hand_worked_numbers() {
        // 100 (20/3 - 2) / (10 - 2) = 100 (14/3) / 8 = 58.333...
        assert!(close(attack_efficiency(CLEAN_TIME, &TIMES), 175.0 / 3.0));
    }

    #[test]
    fn crei_weights_rr_by_alpha() {
        let (rr, ae) = (100.0 / 3.0, 175.0 / 3.0);
        // alpha 0.5: (33.333 + 58.333) / 2 = 45.833...
        assert!(close(crei(rr, ae, 0.5), 275.0 / 6.0));
        assert_eq!(crei(rr, ae, 1.0), rr);
        assert_eq!(crei(rr, ae, 0.0), ae);
        // alpha 0.25: 0.25 * 100/3 + 0.75 * 175/3 = 25/3 + 131.25/3 = 52.083...
        assert!(close(crei(rr, ae, 0.25), 156.25 / 3.0));
    }

    #[test]
    fn single_adversary_terms_of_hand_worked_numbers() {
        // RRS: a = 60 -> 100 (1 - 20/60) = 66.67; a = 40 -> 33.33; a = 20 -> 0.
        let rrs: Vec<f64> = ROBUST.iter().map(|&a| single_robustness(CLEAN, a, 20.0, RrVariant::Beard)).collect();
        for (got, want) in rrs.iter().zip([200.0 / 3.0, 100.0 / 3.0, 0.0]) {
            assert!(close(*got, want), "{got} != {want}");
        }
        // I-RR terms: 60 -> 100 (1 - 20*60/6400) = 81.25; 40 -> 62.5; 20 -> 100 (1 - 3600/6400) = 43.75.
        let irr: Vec<f64> = ROBUST.iter().map(|&a| single_robustness(CLEAN, a, 20.0, RrVariant::IRr)).collect();
        for (got, want) in irr.iter().zip([81.25, 62.5, 43.75]) {
            assert!(close(*got, want), "{got} != {want}");
        }
        // AES: t = 4 -> 100 * 2/8 = 25; 10 -> 100; 6 -> 50.
        let aes: Vec<f64> = TIMES.iter().map(|&t| single_efficiency(CLEAN_TIME, t, 10.0)).collect();
        for (got, want) in aes.iter().zip([25.0, 100.0, 50.0]) {
            assert!(close(*got, want), "{got} != {want}");
        }
    }

    #[test]
    fn multi_adversary_forms_are_means_of_single_adversary_terms() {
        for variant in [RrVariant::Beard, RrVariant::IRr] {
            let terms: Vec<f64> = ROBUST.iter().map(|&a| single_robustness(CLEAN, a, 20.0, variant)).collect();
            assert!(close(mean(&terms), robustness_ratio(CLEAN, &ROBUST, variant)));
        }
        let terms: Vec<f64> = TIMES.iter().map(|&t| single_efficiency(CLEAN_TIME, t, 10.0)).collect();
        assert!(close(mean(&terms), attack_efficiency(CLEAN_TIME, &TIMES)));
    }

    #[test]
    fn rr_is_zero_when_clean_equals_min_robust() {
        assert_eq!(robustness_ratio(50.0, &[50.0, 50.0], RrVariant::Beard), 0.0);
        // Means that round by an ulp still count as equal: 0.1 + 0.2 != 0.3 in binary.
        assert_eq!(robustness_ratio(0.1 + 0.2, &[0.3, 0.3], RrVariant::Beard), 0.0);
        assert!(robustness_ratio(50.0, &[50.0, 40.0], RrVariant::Beard).is_finite());
    }

    #[test]
    fn i_rr_is_zero_when_clean_is_zero_and_finite_when_clean_equals_min() {
        assert_eq!(robustness_ratio(0.0, &[0.0, 0.0], RrVariant::IRr), 0.0);
        // c == min a is not degenerate for I-RR: 100 (1 - 0) = 100.
        assert_eq!(robustness_ratio(50.0, &[50.0], RrVariant::IRr), 100.0);
    }

    #[test]
    fn ae_is_zero_when_max_time_equals_clean_time() {
        assert_eq!(attack_efficiency(3.0, &[3.0, 3.0]), 0.0);
        assert_eq!(attack_efficiency(0.0, &[0.0]), 0.0);
    }

    #[test]
    fn no_attacks_give_zero_scores() {
        assert_eq!(robustness_ratio(80.0, &[], RrVariant::Beard), 0.0);
        assert_eq!(robustness_ratio(80.0, &[], RrVariant::IRr), 0.0);
        assert_eq!(attack_efficiency(1.0, &[]), 0.0);
    }

    #[test]
    fn one_attack_gives_zero_rr_and_full_ae() {
        // One attack is its own minimum (RR degenerate) and its own maximum (AE = 100).
        assert_eq!(robustness_ratio(80.0, &[30.0], RrVariant::Beard), 0.0);
        assert_eq!(attack_efficiency(1.0, &[5.0]), 100.0);
    }
}
