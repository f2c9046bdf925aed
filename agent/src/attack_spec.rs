//! Attack specs as the command line writes them: `NAME` or `NAME:key=value,...`, e.g.
//! `pgd:eps=8/255,alpha=2/255,steps=10`, parsed into the task's [`AttackConfig`].
//!
//! Names and parameter names are the sweep file's (torchattacks' parameter names); parameters
//! not written take BEARD's reference defaults (DESIGN.md, the same as the sweep file's). Numbers
//! may be decimals or fractions (`8/255`); `steps`, `top_k`, `n_restarts`, `n_target_classes`,
//! `n_queries` and `seed` are integers; `random_start`, `per_image` and `torchattacks_margin` are
//! `true` or `false`. The parser checks only the syntax and the names: the attacks check the
//! values when they are built.

use beard_proto::v1::{self, AttackConfig, attack_config::Attack};

/// Why a spec could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("unknown attack {0:?}; known: fgsm, pgd, pgdl2, cw, deepfool, autoattack, apgd-ce, apgd-t, fab-t, square")]
    UnknownAttack(String),
    #[error("{attack} has no parameter {key:?}; it takes {known}")]
    UnknownParameter { attack: &'static str, key: String, known: &'static str },
    #[error("expected key=value, found {0:?}")]
    Malformed(String),
    #[error("parameter {0:?} is given twice")]
    Repeated(String),
    #[error("{key}={value:?}: expected {expected}")]
    BadValue { key: String, value: String, expected: &'static str },
}

/// The attack config a spec describes.
pub fn parse(spec: &str) -> Result<AttackConfig, SpecError> {
    let (name, parameters) = spec.trim().split_once(':').unwrap_or((spec.trim(), ""));
    let mut attack = defaults(name).ok_or_else(|| SpecError::UnknownAttack(name.to_owned()))?;
    let mut seen: Vec<&str> = Vec::new();
    for item in parameters.split(',').map(str::trim).filter(|item| !item.is_empty()) {
        let (key, value) = item.split_once('=').ok_or_else(|| SpecError::Malformed(item.to_owned()))?;
        let (key, value) = (key.trim(), value.trim());
        if seen.contains(&key) {
            return Err(SpecError::Repeated(key.to_owned()));
        }
        seen.push(key);
        set(&mut attack, key, value)?;
    }
    Ok(AttackConfig { attack: Some(attack) })
}

/// A list of specs separated by commas, semicolons or spaces: an item with `=` (and no `:`) is a
/// parameter of the spec before it, any other item starts a new spec, so
/// `fgsm,pgd:eps=4/255,steps=5,deepfool` is three attacks.
pub fn parse_list(list: &str) -> Result<Vec<AttackConfig>, SpecError> {
    let mut specs: Vec<String> = Vec::new();
    for item in list.split([',', ';', ' ']).map(str::trim).filter(|item| !item.is_empty()) {
        match specs.last_mut() {
            Some(spec) if item.contains('=') && !item.contains(':') => {
                spec.push(',');
                spec.push_str(item);
            }
            _ => specs.push(item.to_owned()),
        }
    }
    specs.iter().map(|spec| parse(spec)).collect()
}

/// The spec of `config` with every parameter written (what [`parse`] reads back to `config`).
pub fn format(config: &AttackConfig) -> String {
    let name = beard_proto::describe::attack_name(config);
    let parameters = match &config.attack {
        None => return name.to_owned(),
        Some(Attack::Fgsm(fgsm)) => format!("eps={}", fgsm.eps),
        Some(Attack::Pgd(v1::Pgd { eps, alpha, steps, random_start }))
        | Some(Attack::Pgdl2(v1::PgdL2 { eps, alpha, steps, random_start })) => {
            format!("eps={eps},alpha={alpha},steps={steps},random_start={random_start}")
        }
        Some(Attack::Cw(v1::CarliniWagner { c, kappa, steps, lr, torchattacks_margin })) => {
            format!("c={c},kappa={kappa},steps={steps},lr={lr},torchattacks_margin={torchattacks_margin}")
        }
        Some(Attack::Deepfool(deepfool)) => {
            let v1::DeepFool { steps, overshoot, top_k, per_image } = deepfool;
            format!("steps={steps},overshoot={overshoot},top_k={top_k},per_image={per_image}")
        }
        Some(Attack::Autoattack(autoattack)) => {
            format!(
                "eps={},version={},steps={},seed={}",
                autoattack.eps, autoattack.version, autoattack.steps, autoattack.seed
            )
        }
        Some(Attack::ApgdCe(apgd)) => {
            format!("eps={},steps={},n_restarts={},seed={}", apgd.eps, apgd.steps, apgd.n_restarts, apgd.seed)
        }
        Some(Attack::ApgdT(apgd)) => format!(
            "eps={},steps={},n_restarts={},n_target_classes={},seed={}",
            apgd.eps, apgd.steps, apgd.n_restarts, apgd.n_target_classes, apgd.seed
        ),
        Some(Attack::FabT(fab)) => format!(
            "eps={},steps={},n_restarts={},n_target_classes={},alpha_max={},eta={},beta={},seed={}",
            fab.eps, fab.steps, fab.n_restarts, fab.n_target_classes, fab.alpha_max, fab.eta, fab.beta, fab.seed
        ),
        Some(Attack::Square(square)) => {
            format!("eps={},n_queries={},p_init={},seed={}", square.eps, square.n_queries, square.p_init, square.seed)
        }
        Some(Attack::Spsa(spsa)) => format!(
            "eps={},delta={},lr={},nb_iter={},nb_sample={},max_batch_size={},seed={}",
            spsa.eps, spsa.delta, spsa.lr, spsa.nb_iter, spsa.nb_sample, spsa.max_batch_size, spsa.seed
        ),
    };
    format!("{name}:{parameters}")
}

/// BEARD's reference defaults (DESIGN.md).
fn defaults(name: &str) -> Option<Attack> {
    Some(match name {
        "fgsm" => Attack::Fgsm(v1::Fgsm { eps: 8.0 / 255.0 }),
        "pgd" => Attack::Pgd(v1::Pgd { eps: 8.0 / 255.0, alpha: 2.0 / 255.0, steps: 10, random_start: false }),
        "pgdl2" => Attack::Pgdl2(v1::PgdL2 { eps: 128.0 / 255.0, alpha: 15.0 / 255.0, steps: 10, random_start: false }),
        "cw" => Attack::Cw(v1::CarliniWagner { c: 1.0, kappa: 0.0, steps: 100, lr: 0.01, torchattacks_margin: false }),
        "deepfool" => Attack::Deepfool(v1::DeepFool { steps: 50, overshoot: 0.02, top_k: 10, per_image: false }),
        "autoattack" => {
            Attack::Autoattack(v1::AutoAttack { eps: 8.0 / 255.0, version: "standard".to_owned(), steps: 100, seed: 0 })
        }
        "apgd-ce" => Attack::ApgdCe(v1::ApgdCe { eps: 8.0 / 255.0, steps: 100, n_restarts: 1, seed: 0 }),
        "apgd-t" => {
            Attack::ApgdT(v1::ApgdT { eps: 8.0 / 255.0, steps: 100, n_restarts: 1, n_target_classes: 9, seed: 0 })
        }
        "fab-t" => Attack::FabT(v1::FabT {
            eps: 8.0 / 255.0,
            steps: 100,
            n_restarts: 1,
            n_target_classes: 9,
            alpha_max: 0.1,
            eta: 1.05,
            beta: 0.9,
            seed: 0,
        }),
        "square" => Attack::Square(v1::Square { eps: 8.0 / 255.0, n_queries: 5000, p_init: 0.8, seed: 0 }),
        "spsa" => Attack::Spsa(v1::Spsa {
            eps: 8.0 / 255.0,
            delta: 0.01,
            lr: 0.01,
            nb_iter: 1,
            nb_sample: 128,
            max_batch_size: 64,
            seed: 0,
        }),
        _ => return None,
    })
}

/// Set one parameter of `attack`.
fn set(attack: &mut Attack, key: &str, value: &str) -> Result<(), SpecError> {
    let name = beard_proto::describe::attack_name(&AttackConfig { attack: Some(attack.clone()) });
    let unknown = |known: &'static str| Err(SpecError::UnknownParameter { attack: name, key: key.to_owned(), known });
    match attack {
        Attack::Fgsm(fgsm) => match key {
            "eps" => fgsm.eps = number(key, value)?,
            _ => return unknown("eps"),
        },
        Attack::Pgd(v1::Pgd { eps, alpha, steps, random_start })
        | Attack::Pgdl2(v1::PgdL2 { eps, alpha, steps, random_start }) => match key {
            "eps" => *eps = number(key, value)?,
            "alpha" => *alpha = number(key, value)?,
            "steps" => *steps = integer(key, value)?,
            "random_start" => *random_start = boolean(key, value)?,
            _ => return unknown("eps, alpha, steps, random_start"),
        },
        Attack::Cw(cw) => match key {
            "c" => cw.c = number(key, value)?,
            "kappa" => cw.kappa = number(key, value)?,
            "steps" => cw.steps = integer(key, value)?,
            "lr" => cw.lr = number(key, value)?,
            "torchattacks_margin" => cw.torchattacks_margin = boolean(key, value)?,
            _ => return unknown("c, kappa, steps, lr, torchattacks_margin"),
        },
        Attack::Deepfool(deepfool) => match key {
            "steps" => deepfool.steps = integer(key, value)?,
            "overshoot" => deepfool.overshoot = number(key, value)?,
            "top_k" => deepfool.top_k = integer(key, value)?,
            "per_image" => deepfool.per_image = boolean(key, value)?,
            _ => return unknown("steps, overshoot, top_k, per_image"),
        },
        Attack::Autoattack(autoattack) => match key {
            "eps" => autoattack.eps = number(key, value)?,
            "version" => autoattack.version = value.to_owned(),
            "steps" => autoattack.steps = integer(key, value)?,
            "seed" => autoattack.seed = integer(key, value)?,
            _ => return unknown("eps, version, steps, seed"),
        },
        Attack::ApgdCe(apgd) => match key {
            "eps" => apgd.eps = number(key, value)?,
            "steps" => apgd.steps = integer(key, value)?,
            "n_restarts" => apgd.n_restarts = integer(key, value)?,
            "seed" => apgd.seed = integer(key, value)?,
            _ => return unknown("eps, steps, n_restarts, seed"),
        },
        Attack::ApgdT(apgd) => match key {
            "eps" => apgd.eps = number(key, value)?,
            "steps" => apgd.steps = integer(key, value)?,
            "n_restarts" => apgd.n_restarts = integer(key, value)?,
            "n_target_classes" => apgd.n_target_classes = integer(key, value)?,
            "seed" => apgd.seed = integer(key, value)?,
            _ => return unknown("eps, steps, n_restarts, n_target_classes, seed"),
        },
        Attack::FabT(fab) => match key {
            "eps" => fab.eps = number(key, value)?,
            "steps" => fab.steps = integer(key, value)?,
            "n_restarts" => fab.n_restarts = integer(key, value)?,
            "n_target_classes" => fab.n_target_classes = integer(key, value)?,
            "alpha_max" => fab.alpha_max = number(key, value)?,
            "eta" => fab.eta = number(key, value)?,
            "beta" => fab.beta = number(key, value)?,
            "seed" => fab.seed = integer(key, value)?,
            _ => return unknown("eps, steps, n_restarts, n_target_classes, alpha_max, eta, beta, seed"),
        },
        Attack::Square(square) => match key {
            "eps" => square.eps = number(key, value)?,
            "n_queries" => square.n_queries = integer(key, value)?,
            "p_init" => square.p_init = number(key, value)?,
            "seed" => square.seed = integer(key, value)?,
            _ => return unknown("eps, n_queries, p_init, seed"),
        },
        Attack::Spsa(spsa) => match key {
            "eps" => spsa.eps = number(key, value)?,
            "delta" => spsa.delta = number(key, value)?,
            "lr" => spsa.lr = number(key, value)?,
            "nb_iter" => spsa.nb_iter = integer(key, value)?,
            "nb_sample" => spsa.nb_sample = integer(key, value)?,
            "max_batch_size" => spsa.max_batch_size = integer(key, value)?,
            "seed" => spsa.seed = integer(key, value)?,
            _ => return unknown("eps, delta, lr, nb_iter, nb_sample, max_batch_size, seed"),
        },
    }
    Ok(())
}

fn bad(key: &str, value: &str, expected: &'static str) -> SpecError {
    SpecError::BadValue { key: key.to_owned(), value: value.to_owned(), expected }
}

/// A finite decimal or fraction `a/b`.
fn number(key: &str, value: &str) -> Result<f64, SpecError> {
    let parse = |text: &str| text.trim().parse::<f64>().ok();
    let parsed = match value.split_once('/') {
        Some((numerator, denominator)) => {
            parse(numerator).zip(parse(denominator)).filter(|&(_, d)| d != 0.0).map(|(n, d)| n / d)
        }
        None => parse(value),
    };
    parsed.filter(|n| n.is_finite()).ok_or_else(|| bad(key, value, "a finite number or fraction such as 8/255"))
}

fn integer(key: &str, value: &str) -> Result<u32, SpecError> {
    value.parse().map_err(|_| bad(key, value, "a non-negative integer"))
}

fn boolean(key: &str, value: &str) -> Result<bool, SpecError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(key, value, "true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attack(spec: &str) -> Attack {
        parse(spec).map(|config| config.attack).ok().flatten().unwrap_or_else(|| panic!("{spec} should parse"))
    }

    #[test]
    fn bare_names_take_the_reference_defaults() {
        assert_eq!(attack("fgsm"), Attack::Fgsm(v1::Fgsm { eps: 8.0 / 255.0 }));
        assert_eq!(
            attack("pgdl2"),
            Attack::Pgdl2(v1::PgdL2 { eps: 128.0 / 255.0, alpha: 15.0 / 255.0, steps: 10, random_start: false })
        );
        assert_eq!(
            attack("cw:"),
            Attack::Cw(v1::CarliniWagner { c: 1.0, kappa: 0.0, steps: 100, lr: 0.01, torchattacks_margin: false })
        );
        assert_eq!(
            attack("deepfool"),
            Attack::Deepfool(v1::DeepFool { steps: 50, overshoot: 0.02, top_k: 10, per_image: false })
        );
        assert_eq!(
            attack("apgd-t"),
            Attack::ApgdT(v1::ApgdT { eps: 8.0 / 255.0, steps: 100, n_restarts: 1, n_target_classes: 9, seed: 0 })
        );
        assert_eq!(
            attack("square:eps=4/255"),
            Attack::Square(v1::Square { eps: 4.0 / 255.0, n_queries: 5000, p_init: 0.8, seed: 0 })
        );
    }

    #[test]
    fn parameters_override_defaults_and_accept_fractions() {
        assert_eq!(
            attack("pgd:eps=8/255,alpha=0.00196, steps=20,random_start=true"),
            Attack::Pgd(v1::Pgd { eps: 8.0 / 255.0, alpha: 0.00196, steps: 20, random_start: true })
        );
        assert_eq!(
            attack("deepfool:top_k=3,overshoot=1e-2"),
            Attack::Deepfool(v1::DeepFool { steps: 50, overshoot: 0.01, top_k: 3, per_image: false })
        );
        assert_eq!(
            attack("cw:c=0.5,kappa=2,lr=1/100"),
            Attack::Cw(v1::CarliniWagner { c: 0.5, kappa: 2.0, steps: 100, lr: 0.01, torchattacks_margin: false })
        );
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(parse("pgdd"), Err(SpecError::UnknownAttack("pgdd".into())));
        assert!(matches!(parse("fgsm:steps=3"), Err(SpecError::UnknownParameter { attack: "fgsm", .. })));
        assert_eq!(parse("pgd:eps"), Err(SpecError::Malformed("eps".into())));
        assert_eq!(parse("pgd:steps=1,steps=2"), Err(SpecError::Repeated("steps".into())));
        for bad in ["pgd:eps=8/0", "pgd:eps=x", "pgd:eps=inf", "pgd:steps=2.5", "pgd:random_start=yes"] {
            assert!(matches!(parse(bad), Err(SpecError::BadValue { .. })), "{bad} should be refused");
        }
        let message = parse("cw:eps=1").map(|_| ()).unwrap_err().to_string();
        assert_eq!(message, "cw has no parameter \"eps\"; it takes c, kappa, steps, lr, torchattacks_margin");
    }

    #[test]
    fn formatted_specs_parse_back_to_the_same_config() {
        for spec in [
            "fgsm",
            "pgd:random_start=true",
            "pgdl2:eps=1/3",
            "cw:kappa=0.5",
            "cw:torchattacks_margin=true",
            "deepfool:top_k=4",
            "deepfool:top_k=0,per_image=true",
            "autoattack",
            "apgd-ce:steps=20,seed=3",
            "apgd-t:n_target_classes=3",
            "fab-t:steps=10,eta=1.1",
            "autoattack:seed=7",
            "square:n_queries=100,p_init=0.5",
        ] {
            let config = parse(spec).expect("parses");
            assert_eq!(parse(&format(&config)), Ok(config), "{spec}");
        }
        assert_eq!(format(&parse("fgsm:eps=0.5").expect("fgsm")), "fgsm:eps=0.5");
    }

    #[test]
    fn lists_start_a_new_spec_at_each_name() {
        let configs = parse_list("fgsm,pgd:eps=4/255,steps=5,deepfool; cw:c=2 pgdl2").expect("list");
        let names: Vec<&str> = configs.iter().map(beard_proto::describe::attack_name).collect();
        assert_eq!(names, ["fgsm", "pgd", "deepfool", "cw", "pgdl2"]);
        assert_eq!(
            configs[1].attack,
            Some(Attack::Pgd(v1::Pgd { eps: 4.0 / 255.0, alpha: 2.0 / 255.0, steps: 5, random_start: false }))
        );
        assert!(parse_list("fgsm;pgdd").is_err());
        assert!(parse_list("eps=1,fgsm").is_err());
        assert_eq!(
            parse_list("pgdl2:steps=1,eps=1").map(|c| c[0].attack.clone()),
            Ok(Some(Attack::Pgdl2(v1::PgdL2 { eps: 1.0, alpha: 15.0 / 255.0, steps: 1, random_start: false })))
        );
        assert!(matches!(parse("pgdl2:top_k=1"), Err(SpecError::UnknownParameter { attack: "pgdl2", .. })));
    }
}
