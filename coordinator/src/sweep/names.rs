//! The closed sets of names a sweep file uses as mapping keys — datasets and attacks — with their
//! canonical spellings and the "unknown name, expected one of …" errors.

use std::fmt;

use serde::de;

use super::collections::MapKey;

/// Declares a name enum with its canonical spellings, `ALL`, `as_str`, `Display` and [`MapKey`].
macro_rules! names {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal {
            $($(#[$variant_meta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            /// Every name, in canonical order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The canonical lowercase spelling, as written in sweep files and protos.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl MapKey for $name {
            const WHAT: &'static str = $what;

            fn from_text<E: de::Error>(text: &str) -> Result<Self, E> {
                $name::ALL.iter().copied().find(|name| name.as_str() == text).ok_or_else(|| {
                    let expected: Vec<&str> = $name::ALL.iter().map(|name| name.as_str()).collect();
                    E::custom(format_args!(
                        "unknown {} '{text}', expected one of {}",
                        $what,
                        expected.join(", ")
                    ))
                })
            }
        }
    };
}

names! {
    /// A dataset BEARD evaluates on.
    DatasetName, "dataset" {
        /// Built in and procedurally generated (32x32, 10 classes); needs no files.
        Synthetic = "synthetic",
        Cifar10 = "cifar10",
        Cifar100 = "cifar100",
        TinyImageNet = "tinyimagenet",
    }
}

names! {
    /// An attack of the BEARD suite.
    AttackName, "attack" {
        Fgsm = "fgsm",
        Pgd = "pgd",
        PgdL2 = "pgdl2",
        Cw = "cw",
        DeepFool = "deepfool",
        AutoAttack = "autoattack",
        /// AutoAttack's parts, each on its own.
        ApgdCe = "apgd-ce",
        ApgdT = "apgd-t",
        FabT = "fab-t",
        Square = "square",
        Spsa = "spsa",
    }
}

impl DatasetName {
    /// Whether the dataset's images come from files under a `root` directory.
    pub fn needs_root(self) -> bool {
        self != DatasetName::Synthetic
    }

    /// Number of classes.
    pub fn classes(self) -> usize {
        match self {
            DatasetName::Synthetic | DatasetName::Cifar10 => 10,
            DatasetName::Cifar100 => 100,
            DatasetName::TinyImageNet => 200,
        }
    }

    /// Height and width of the (square, RGB) images.
    pub fn image_size(self) -> usize {
        match self {
            DatasetName::TinyImageNet => 64,
            DatasetName::Synthetic | DatasetName::Cifar10 | DatasetName::Cifar100 => 32,
        }
    }

    /// ConvNet depth that brings the feature map to 4x4: 4 for 64x64 TinyImageNet, else 3.
    pub fn auto_depth(self) -> u32 {
        match self {
            DatasetName::TinyImageNet => 4,
            DatasetName::Synthetic | DatasetName::Cifar10 | DatasetName::Cifar100 => 3,
        }
    }
}

impl AttackName {
    /// Whether the attack has a targeted mode (DeepFool, AutoAttack and its parts, Square:
    /// untargeted only, as in BEARD).
    pub fn supports_targeted(self) -> bool {
        matches!(self, AttackName::Fgsm | AttackName::Pgd | AttackName::PgdL2 | AttackName::Cw | AttackName::Spsa)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_choices() {
        for name in AttackName::ALL {
            assert_eq!(AttackName::from_text::<de::value::Error>(name.as_str()), Ok(*name));
        }
        let err = DatasetName::from_text::<de::value::Error>("cifar-10").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown dataset 'cifar-10', expected one of synthetic, cifar10, cifar100, tinyimagenet"
        );
    }
}
