//! The values a `torch.save` file decodes to: plain Python data, tensors with their bytes, and
//! opaque records of anything else (a class and its arguments, never executed).

/// Element types of tensor storages (`torch.FloatStorage` and friends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl Dtype {
    /// The dtype of a storage class name as torch pickles it (`FloatStorage`, ...).
    pub fn from_storage_class(name: &str) -> Option<Self> {
        Some(match name {
            "DoubleStorage" => Self::F64,
            "FloatStorage" => Self::F32,
            "HalfStorage" => Self::F16,
            "BFloat16Storage" => Self::BF16,
            "LongStorage" => Self::I64,
            "IntStorage" => Self::I32,
            "ShortStorage" => Self::I16,
            "CharStorage" => Self::I8,
            "ByteStorage" | "UntypedStorage" => Self::U8,
            "BoolStorage" => Self::Bool,
            _ => return None,
        })
    }

    /// The storage class torch pickles for this dtype (the inverse of
    /// [`Dtype::from_storage_class`]).
    pub fn storage_class(self) -> &'static str {
        match self {
            Self::F64 => "DoubleStorage",
            Self::F32 => "FloatStorage",
            Self::F16 => "HalfStorage",
            Self::BF16 => "BFloat16Storage",
            Self::I64 => "LongStorage",
            Self::I32 => "IntStorage",
            Self::I16 => "ShortStorage",
            Self::I8 => "CharStorage",
            Self::U8 => "ByteStorage",
            Self::Bool => "BoolStorage",
        }
    }

    /// The safetensors dtype of the same element type.
    pub fn safetensors(self) -> safetensors::Dtype {
        use safetensors::Dtype as S;
        match self {
            Self::F64 => S::F64,
            Self::F32 => S::F32,
            Self::F16 => S::F16,
            Self::BF16 => S::BF16,
            Self::I64 => S::I64,
            Self::I32 => S::I32,
            Self::I16 => S::I16,
            Self::I8 => S::I8,
            Self::U8 => S::U8,
            Self::Bool => S::BOOL,
        }
    }

    /// The dtype of a safetensors dtype, if it has one here.
    pub fn from_safetensors(dtype: safetensors::Dtype) -> Option<Self> {
        use safetensors::Dtype as S;
        Some(match dtype {
            S::F64 => Self::F64,
            S::F32 => Self::F32,
            S::F16 => Self::F16,
            S::BF16 => Self::BF16,
            S::I64 => Self::I64,
            S::I32 => Self::I32,
            S::I16 => Self::I16,
            S::I8 => Self::I8,
            S::U8 => Self::U8,
            S::BOOL => Self::Bool,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }

    /// True for floating-point dtypes.
    pub fn is_float(self) -> bool {
        matches!(self, Self::F64 | Self::F32 | Self::F16 | Self::BF16)
    }
}

/// A tensor read from a file: contiguous row-major little-endian bytes (strides and storage
/// offset already applied).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl StoredTensor {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A decoded pickle value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// A `dict` or `collections.OrderedDict`, in insertion order.
    Dict(Vec<(Value, Value)>),
    Tensor(StoredTensor),
    /// A reference to a class or function (`module.name`) that is not called.
    Global(String),
    /// An instance of a class this reader does not rebuild: the class (`module.name`), the
    /// arguments it would have been called with, and the state `BUILD` gave it.
    Object {
        class: String,
        args: Box<Value>,
        state: Option<Box<Value>>,
    },
}

impl Value {
    /// What kind of value this is, for error messages.
    pub fn describe(&self) -> String {
        match self {
            Self::None => "None".into(),
            Self::Bool(_) => "a bool".into(),
            Self::Int(_) => "an int".into(),
            Self::Float(_) => "a float".into(),
            Self::Str(_) => "a str".into(),
            Self::Bytes(_) => "bytes".into(),
            Self::Tuple(items) => format!("a tuple of {}", items.len()),
            Self::List(items) => format!("a list of {}", items.len()),
            Self::Dict(items) => format!("a dict of {}", items.len()),
            Self::Tensor(tensor) => format!("a {:?} tensor of shape {:?}", tensor.dtype, tensor.shape),
            Self::Global(name) => format!("the global {name}"),
            Self::Object { class, .. } => format!("a {class} object"),
        }
    }

    /// The value under string key `key` of a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Self::Dict(items) => items.iter().find(|(k, _)| matches!(k, Self::Str(s) if s == key)).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The items of a list or tuple.
    pub fn as_sequence(&self) -> Option<&[Value]> {
        match self {
            Self::List(items) | Self::Tuple(items) => Some(items),
            _ => None,
        }
    }
}
