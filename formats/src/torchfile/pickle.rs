//! A pickle machine for the subset of the format `torch.save` writes (protocols 2 to 5).
//!
//! It builds plain data (None, bools, ints, floats, strings, bytes, tuples, lists, dicts), turns
//! `collections.OrderedDict()` into a dict, records tensors from
//! `torch._utils._rebuild_tensor_v2` / `_rebuild_parameter` with their persistent-id storages,
//! decodes protocol 2's `_codecs.encode(text, 'latin1')` bytes, and keeps any other class or
//! function call as an opaque [`Value::Object`]. Nothing is ever
//! imported or executed. Objects are shared while the machine runs (the memo refers to the same
//! list or dict the stack holds, as in Python), and [`decode`] turns the result into a
//! plain [`Value`] tree, reading storages through a caller's function.

use std::cell::RefCell;
use std::rc::Rc;

use super::value::{Dtype, StoredTensor, Value};

/// Why a pickle could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("at byte {offset}: {message}")]
pub struct PickleError {
    pub offset: usize,
    pub message: String,
}

/// A storage a tensor refers to: its dtype, its key in the archive and its element count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageRef {
    pub dtype: Dtype,
    pub key: String,
    pub numel: usize,
}

/// A tensor as pickled: a view into a storage.
#[derive(Debug)]
struct TensorRecord {
    storage: StorageRef,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

type Shared<T> = Rc<RefCell<T>>;

/// Returns the bytes of a storage (read once, shared afterwards) or why it cannot.
pub type StorageReader<'a> = dyn FnMut(&StorageRef) -> Result<Rc<Vec<u8>>, String> + 'a;

/// A value while the machine runs.
#[derive(Clone, Debug)]
enum Obj {
    Mark,
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Rc<[Obj]>),
    List(Shared<Vec<Obj>>),
    Dict(Shared<Vec<(Obj, Obj)>>),
    Global(Rc<str>),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRecord>),
    Object { class: Rc<str>, args: Rc<Obj>, state: Shared<Option<Obj>> },
}

/// Nesting deeper than this is refused (it also ends self-referencing structures).
const MAX_DEPTH: usize = 100;

/// Decode `bytes`; `storage` returns the bytes of a storage the first time a tensor needs it.
pub fn decode(bytes: &[u8], storage: &mut StorageReader<'_>) -> Result<Value, PickleError> {
    let mut machine = Machine { bytes, position: 0, stack: Vec::new(), memo: Vec::new() };
    let result = machine.run()?;
    let end = machine.position;
    freeze(&result, storage, 0).map_err(|message| PickleError { offset: end, message })
}

struct Machine<'a> {
    bytes: &'a [u8],
    position: usize,
    stack: Vec<Obj>,
    memo: Vec<Option<Obj>>,
}

impl Machine<'_> {
    fn run(&mut self) -> Result<Obj, PickleError> {
        loop {
            let start = self.position;
            let step = self.take_u8().and_then(|opcode| self.step(opcode));
            match step {
                Ok(Some(result)) => return Ok(result),
                Ok(None) => {}
                Err(message) => return Err(PickleError { offset: start, message }),
            }
        }
    }

    /// Run one opcode; `Some` at STOP.
    fn step(&mut self, opcode: u8) -> Result<Option<Obj>, String> {
        match opcode {
            0x80 => {
                let version = self.take_u8()?;
                if version > 5 {
                    return Err(format!("pickle protocol {version} is not supported (at most 5)"));
                }
            }
            0x95 => {
                self.take(8)?;
            }
            b'.' => {
                let result = self.pop()?;
                return if self.stack.is_empty() {
                    Ok(Some(result))
                } else {
                    Err(format!("STOP with {} values left on the stack", self.stack.len()))
                };
            }
            b'(' => self.stack.push(Obj::Mark),
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let top = self.top()?.clone();
                self.stack.push(top);
            }
            b'N' => self.stack.push(Obj::None),
            0x88 => self.stack.push(Obj::Bool(true)),
            0x89 => self.stack.push(Obj::Bool(false)),
            b'J' => {
                let value = i32::from_le_bytes(self.take_array()?);
                self.stack.push(Obj::Int(i64::from(value)));
            }
            b'K' => {
                let value = self.take_u8()?;
                self.stack.push(Obj::Int(i64::from(value)));
            }
            b'M' => {
                let value = u16::from_le_bytes(self.take_array()?);
                self.stack.push(Obj::Int(i64::from(value)));
            }
            0x8a => {
                let length = usize::from(self.take_u8()?);
                let value = long(self.take(length)?)?;
                self.stack.push(Obj::Int(value));
            }
            0x8b => {
                let length = self.take_u32()?;
                let value = long(self.take(length)?)?;
                self.stack.push(Obj::Int(value));
            }
            b'G' => {
                let value = f64::from_be_bytes(self.take_array()?);
                self.stack.push(Obj::Float(value));
            }
            b'X' => {
                let length = self.take_u32()?;
                self.push_str(length)?;
            }
            0x8c => {
                let length = usize::from(self.take_u8()?);
                self.push_str(length)?;
            }
            0x8d => {
                let length = self.take_u64()?;
                self.push_str(length)?;
            }
            b'B' => {
                let length = self.take_u32()?;
                self.push_bytes(length)?;
            }
            b'C' => {
                let length = usize::from(self.take_u8()?);
                self.push_bytes(length)?;
            }
            0x8e => {
                let length = self.take_u64()?;
                self.push_bytes(length)?;
            }
            b'}' => self.stack.push(Obj::Dict(Rc::default())),
            b']' => self.stack.push(Obj::List(Rc::default())),
            b')' => self.stack.push(Obj::Tuple(Rc::from([]))),
            b't' => {
                let items = self.pop_mark()?;
                self.stack.push(Obj::Tuple(items.into()));
            }
            0x85..=0x87 => {
                let count = usize::from(opcode - 0x84);
                let at = self.stack.len().checked_sub(count).ok_or("TUPLE with too few values on the stack")?;
                let items = self.stack.split_off(at);
                if items.iter().any(|item| matches!(item, Obj::Mark)) {
                    return Err("TUPLE over a MARK".into());
                }
                self.stack.push(Obj::Tuple(items.into()));
            }
            b'l' => {
                let items = self.pop_mark()?;
                self.stack.push(Obj::List(Rc::new(RefCell::new(items))));
            }
            b'd' => {
                let items = pairs(self.pop_mark()?)?;
                self.stack.push(Obj::Dict(Rc::new(RefCell::new(items))));
            }
            b'a' => {
                let item = self.pop()?;
                self.append(vec![item])?;
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.append(items)?;
            }
            b's' => {
                let value = self.pop()?;
                let key = self.pop()?;
                self.set_items(vec![(key, value)])?;
            }
            b'u' => {
                let items = pairs(self.pop_mark()?)?;
                self.set_items(items)?;
            }
            b'q' => {
                let index = usize::from(self.take_u8()?);
                self.put(index)?;
            }
            b'r' => {
                let index = self.take_u32()?;
                self.put(index)?;
            }
            0x94 => self.put(self.memo.len())?,
            b'h' => {
                let index = usize::from(self.take_u8()?);
                self.get(index)?;
            }
            b'j' => {
                let index = self.take_u32()?;
                self.get(index)?;
            }
            b'c' => {
                let module = self.take_line()?;
                let name = self.take_line()?;
                self.stack.push(Obj::Global(format!("{module}.{name}").into()));
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Obj::Str(module), Obj::Str(name)) = (module, name) else {
                    return Err("STACK_GLOBAL needs two strings".into());
                };
                self.stack.push(Obj::Global(format!("{module}.{name}").into()));
            }
            b'R' => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let result = reduce(callable, args)?;
                self.stack.push(result);
            }
            0x81 => {
                let args = self.pop()?;
                let class = self.pop()?;
                let Obj::Global(class) = class else {
                    return Err(format!("NEWOBJ on {}, not a class", kind(&class)));
                };
                self.stack.push(Obj::Object { class, args: Rc::new(args), state: Rc::default() });
            }
            b'b' => {
                let state = self.pop()?;
                match self.top()? {
                    Obj::Object { state: slot, .. } => *slot.borrow_mut() = Some(state),
                    // Attributes of a dict (a state_dict's `_metadata`) are not items: dropped.
                    Obj::Dict(_) => {}
                    other => return Err(format!("BUILD on {}", kind(other))),
                }
            }
            b'Q' => {
                let pid = self.pop()?;
                let storage = persistent_storage(&pid)?;
                self.stack.push(Obj::Storage(Rc::new(storage)));
            }
            other => return Err(format!("unsupported pickle opcode 0x{other:02x}")),
        }
        Ok(None)
    }

    fn take(&mut self, count: usize) -> Result<&[u8], String> {
        let end = self.position.checked_add(count).filter(|&end| end <= self.bytes.len()).ok_or_else(|| {
            format!("the pickle ends early: {count} more bytes expected, {} left", self.bytes.len() - self.position)
        })?;
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn take_u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn take_u32(&mut self) -> Result<usize, String> {
        Ok(u32::from_le_bytes(self.take_array()?) as usize)
    }

    fn take_u64(&mut self) -> Result<usize, String> {
        usize::try_from(u64::from_le_bytes(self.take_array()?)).map_err(|_| "length does not fit in memory".into())
    }

    fn take_line(&mut self) -> Result<String, String> {
        let rest = &self.bytes[self.position..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or("GLOBAL without a newline")?;
        let line = std::str::from_utf8(&rest[..end]).map_err(|_| "GLOBAL name is not UTF-8")?.to_owned();
        self.position += end + 1;
        Ok(line)
    }

    fn push_str(&mut self, length: usize) -> Result<(), String> {
        let text = std::str::from_utf8(self.take(length)?).map_err(|error| format!("string is not UTF-8: {error}"))?;
        let text: Rc<str> = text.into();
        self.stack.push(Obj::Str(text));
        Ok(())
    }

    fn push_bytes(&mut self, length: usize) -> Result<(), String> {
        let bytes: Rc<[u8]> = self.take(length)?.into();
        self.stack.push(Obj::Bytes(bytes));
        Ok(())
    }

    fn pop(&mut self) -> Result<Obj, String> {
        match self.stack.pop() {
            Some(Obj::Mark) => Err("a MARK where a value was expected".into()),
            Some(value) => Ok(value),
            None => Err("the stack is empty".into()),
        }
    }

    fn top(&self) -> Result<&Obj, String> {
        self.stack.last().ok_or_else(|| "the stack is empty".into())
    }

    /// The values above the topmost MARK, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Obj>, String> {
        let mark = self.stack.iter().rposition(|item| matches!(item, Obj::Mark)).ok_or("no MARK on the stack")?;
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items)
    }

    fn append(&mut self, items: Vec<Obj>) -> Result<(), String> {
        match self.top()? {
            Obj::List(list) => {
                list.borrow_mut().extend(items);
                Ok(())
            }
            other => Err(format!("APPEND to {}", kind(other))),
        }
    }

    fn set_items(&mut self, items: Vec<(Obj, Obj)>) -> Result<(), String> {
        match self.top()? {
            Obj::Dict(dict) => {
                let mut dict = dict.borrow_mut();
                for (key, value) in items {
                    match dict.iter_mut().find(|(existing, _)| same_key(existing, &key)) {
                        Some(entry) => entry.1 = value,
                        None => dict.push((key, value)),
                    }
                }
                Ok(())
            }
            other => Err(format!("SETITEM on {}", kind(other))),
        }
    }

    fn put(&mut self, index: usize) -> Result<(), String> {
        let value = self.top()?.clone();
        if matches!(value, Obj::Mark) {
            return Err("memoizing a MARK".into());
        }
        if index > self.memo.len() + (1 << 20) {
            return Err(format!("memo index {index} is implausibly large"));
        }
        if self.memo.len() <= index {
            self.memo.resize(index + 1, None);
        }
        self.memo[index] = Some(value);
        Ok(())
    }

    fn get(&mut self, index: usize) -> Result<(), String> {
        let value = self.memo.get(index).cloned().flatten().ok_or_else(|| format!("memo entry {index} is empty"))?;
        self.stack.push(value);
        Ok(())
    }
}

/// A LONG1 / LONG4 payload: little-endian two's complement.
fn long(bytes: &[u8]) -> Result<i64, String> {
    if bytes.len() > 8 {
        return Err(format!("integer of {} bytes does not fit in 64 bits", bytes.len()));
    }
    let fill = if bytes.last().is_some_and(|&b| b & 0x80 != 0) { 0xff } else { 0 };
    let mut array = [fill; 8];
    array[..bytes.len()].copy_from_slice(bytes);
    Ok(i64::from_le_bytes(array))
}

fn pairs(items: Vec<Obj>) -> Result<Vec<(Obj, Obj)>, String> {
    if !items.len().is_multiple_of(2) {
        return Err(format!("{} values for key/value pairs", items.len()));
    }
    let mut iter = items.into_iter();
    let mut out = Vec::new();
    while let (Some(key), Some(value)) = (iter.next(), iter.next()) {
        out.push((key, value));
    }
    Ok(out)
}

fn same_key(a: &Obj, b: &Obj) -> bool {
    match (a, b) {
        (Obj::Str(a), Obj::Str(b)) => a == b,
        (Obj::Int(a), Obj::Int(b)) => a == b,
        (Obj::Bool(a), Obj::Bool(b)) => a == b,
        (Obj::None, Obj::None) => true,
        _ => false,
    }
}

/// `callable(*args)` for the callables this reader rebuilds; any other call is kept opaque.
fn reduce(callable: Obj, args: Obj) -> Result<Obj, String> {
    let Obj::Global(name) = &callable else {
        return Err(format!("REDUCE on {}, not a global", kind(&callable)));
    };
    let Obj::Tuple(items) = &args else {
        return Err(format!("REDUCE of {name} with {} as arguments", kind(&args)));
    };
    match &**name {
        "collections.OrderedDict" if items.is_empty() => Ok(Obj::Dict(Rc::default())),
        "torch._utils._rebuild_tensor_v2" => rebuild_tensor(items),
        // Protocol 2 writes `bytes` as `_codecs.encode(text, 'latin1')`.
        "_codecs.encode" => match &**items {
            [Obj::Str(text), Obj::Str(encoding)] if &**encoding == "latin1" => text
                .chars()
                .map(|c| u8::try_from(u32::from(c)).map_err(|_| format!("{c:?} is not latin-1")))
                .collect::<Result<Rc<[u8]>, String>>()
                .map(Obj::Bytes),
            _ => Err("_codecs.encode is only read as (str, 'latin1')".into()),
        },
        "torch._utils._rebuild_parameter" => match items.first() {
            Some(tensor @ Obj::Tensor(_)) => Ok(tensor.clone()),
            _ => Err("_rebuild_parameter without a tensor".into()),
        },
        _ => Ok(Obj::Object { class: name.clone(), args: Rc::new(args), state: Rc::default() }),
    }
}

/// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`.
fn rebuild_tensor(items: &[Obj]) -> Result<Obj, String> {
    let [Obj::Storage(storage), Obj::Int(offset), size, stride, ..] = items else {
        return Err("_rebuild_tensor_v2 arguments are not (storage, offset, size, stride, ...)".into());
    };
    let shape = dims(size, "size")?;
    let stride = dims(stride, "stride")?;
    if shape.len() != stride.len() {
        return Err(format!("tensor size {shape:?} and stride {stride:?} differ in rank"));
    }
    let offset = usize::try_from(*offset).map_err(|_| format!("negative storage offset {offset}"))?;
    // The last element the view touches must lie inside the storage.
    if shape.iter().all(|&d| d > 0) {
        let last = shape.iter().zip(&stride).try_fold(offset, |acc, (&d, &s)| acc.checked_add((d - 1).checked_mul(s)?));
        if last.is_none_or(|last| last >= storage.numel) {
            return Err(format!(
                "tensor of size {shape:?}, stride {stride:?}, offset {offset} reaches past storage {} of {} elements",
                storage.key, storage.numel
            ));
        }
    }
    Ok(Obj::Tensor(Rc::new(TensorRecord { storage: (**storage).clone(), offset, shape, stride })))
}

fn dims(value: &Obj, what: &str) -> Result<Vec<usize>, String> {
    let Obj::Tuple(items) = value else {
        return Err(format!("tensor {what} is {}, not a tuple", kind(value)));
    };
    items
        .iter()
        .map(|item| match item {
            Obj::Int(d) => usize::try_from(*d).map_err(|_| format!("negative tensor {what} {d}")),
            other => Err(format!("tensor {what} holds {}", kind(other))),
        })
        .collect()
}

/// `('storage', storage_class, key, location, numel)`.
fn persistent_storage(pid: &Obj) -> Result<StorageRef, String> {
    let Obj::Tuple(items) = pid else {
        return Err(format!("persistent id is {}, not a tuple", kind(pid)));
    };
    let [Obj::Str(tag), Obj::Global(class), Obj::Str(key), _location, Obj::Int(numel)] = &**items else {
        return Err("persistent id is not ('storage', class, key, location, numel)".into());
    };
    if &**tag != "storage" {
        return Err(format!("persistent id of type {tag:?}, expected 'storage'"));
    }
    let dtype = class
        .strip_prefix("torch.")
        .and_then(|name| Dtype::from_storage_class(name.trim_start_matches("storage.")))
        .ok_or_else(|| format!("unsupported storage type {class}"))?;
    let numel = usize::try_from(*numel).map_err(|_| format!("negative storage size {numel}"))?;
    Ok(StorageRef { dtype, key: key.to_string(), numel })
}

fn kind(obj: &Obj) -> &'static str {
    match obj {
        Obj::Mark => "a MARK",
        Obj::None => "None",
        Obj::Bool(_) => "a bool",
        Obj::Int(_) => "an int",
        Obj::Float(_) => "a float",
        Obj::Str(_) => "a str",
        Obj::Bytes(_) => "bytes",
        Obj::Tuple(_) => "a tuple",
        Obj::List(_) => "a list",
        Obj::Dict(_) => "a dict",
        Obj::Global(_) => "a global",
        Obj::Storage(_) => "a storage",
        Obj::Tensor(_) => "a tensor",
        Obj::Object { .. } => "an object",
    }
}

/// The plain value of `obj`, with tensor data read through `storage`.
fn freeze(obj: &Obj, storage: &mut StorageReader<'_>, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!("values nest deeper than {MAX_DEPTH} levels (or refer to themselves)"));
    }
    Ok(match obj {
        Obj::Mark => return Err("a MARK left in the result".into()),
        Obj::None => Value::None,
        Obj::Bool(b) => Value::Bool(*b),
        Obj::Int(i) => Value::Int(*i),
        Obj::Float(f) => Value::Float(*f),
        Obj::Str(s) => Value::Str(s.to_string()),
        Obj::Bytes(b) => Value::Bytes(b.to_vec()),
        Obj::Tuple(items) => Value::Tuple(freeze_all(items, storage, depth)?),
        Obj::List(items) => Value::List(freeze_all(&items.borrow(), storage, depth)?),
        Obj::Dict(items) => {
            let items = items.borrow();
            let mut out = Vec::with_capacity(items.len());
            for (key, value) in items.iter() {
                out.push((freeze(key, storage, depth + 1)?, freeze(value, storage, depth + 1)?));
            }
            Value::Dict(out)
        }
        Obj::Global(name) => Value::Global(name.to_string()),
        Obj::Storage(reference) => return Err(format!("a bare storage ({}) outside a tensor", reference.key)),
        Obj::Tensor(record) => Value::Tensor(materialize(record, &storage(&record.storage)?)),
        Obj::Object { class, args, state } => Value::Object {
            class: class.to_string(),
            args: Box::new(freeze(args, storage, depth + 1)?),
            state: state.borrow().as_ref().map(|s| freeze(s, storage, depth + 1).map(Box::new)).transpose()?,
        },
    })
}

fn freeze_all(items: &[Obj], storage: &mut StorageReader<'_>, depth: usize) -> Result<Vec<Value>, String> {
    items.iter().map(|item| freeze(item, storage, depth + 1)).collect()
}

/// Copy the view `record` describes out of `data` into contiguous row-major bytes; the bounds
/// were checked when the tensor was rebuilt and `data` holds the whole storage.
fn materialize(record: &TensorRecord, data: &[u8]) -> StoredTensor {
    let size = record.storage.dtype.size();
    let numel: usize = record.shape.iter().product();
    let contiguous = record
        .shape
        .iter()
        .rev()
        .zip(record.stride.iter().rev())
        .try_fold(1usize, |expected, (&d, &s)| (d <= 1 || s == expected).then_some(expected * d));
    if contiguous.is_some() {
        let start = record.offset * size;
        return StoredTensor {
            dtype: record.storage.dtype,
            shape: record.shape.clone(),
            data: data[start..start + numel * size].to_vec(),
        };
    }
    let mut out = Vec::with_capacity(numel * size);
    let mut index = vec![0usize; record.shape.len()];
    for _ in 0..numel {
        let element = record.offset + index.iter().zip(&record.stride).map(|(i, s)| i * s).sum::<usize>();
        out.extend_from_slice(&data[element * size..(element + 1) * size]);
        for axis in (0..index.len()).rev() {
            index[axis] += 1;
            if index[axis] < record.shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    StoredTensor { dtype: record.storage.dtype, shape: record.shape.clone(), data: out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(program: &[u8]) -> Result<Value, PickleError> {
        decode(program, &mut |reference| Ok(Rc::new(vec![7u8; reference.numel * reference.dtype.size()])))
    }

    fn text(s: &str) -> Vec<u8> {
        [&[0x8c, s.len() as u8][..], s.as_bytes()].concat()
    }

    #[test]
    fn the_memo_shares_objects_mutated_after_they_were_memoized() {
        // d = {}; l = []; d['a'] = l; d['b'] = l; l.append(5)
        let program = [&b"\x80\x02}"[..], &text("a"), b"]q\x00s", &text("b"), b"h\x00sh\x00K\x05a0."].concat();
        let list = Value::List(vec![Value::Int(5)]);
        assert_eq!(
            run(&program),
            Ok(Value::Dict(vec![(Value::Str("a".into()), list.clone()), (Value::Str("b".into()), list)]))
        );
    }

    #[test]
    fn malformed_programs_report_their_byte_offset() {
        let truncated = run(b"\x80\x02X\x05\x00\x00\x00ab").unwrap_err();
        assert_eq!(truncated.offset, 2, "{truncated}");
        assert!(truncated.message.contains("ends early"), "{truncated}");
        let unknown = run(b"\x80\x02\xff").unwrap_err();
        assert_eq!((unknown.offset, unknown.message.as_str()), (2, "unsupported pickle opcode 0xff"));
        assert!(run(b"\x80\x02a.").unwrap_err().message.contains("stack is empty"));
        assert!(run(b"\x80\x02K\x01K\x02.").unwrap_err().message.contains("left on the stack"));
        let cycle = run(b"\x80\x02]q\x00h\x00a.").unwrap_err();
        assert!(cycle.message.contains("refer to themselves"), "{cycle}");
    }

    #[test]
    fn tensors_must_fit_inside_their_storage() {
        let tensor = |size: u8| {
            [
                &b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(("[..],
                &text("storage"),
                b"ctorch\nFloatStorage\n",
                &text("0"),
                &text("cpu"),
                b"K\x04tQK\x00K",
                &[size],
                b"\x85K\x01\x85\x89NtR.",
            ]
            .concat()
        };
        let Ok(Value::Tensor(ok)) = run(&tensor(4)) else { panic!("a tensor") };
        assert_eq!((ok.dtype, ok.shape.clone(), ok.data.len()), (Dtype::F32, vec![4], 16));
        let error = run(&tensor(5)).unwrap_err();
        assert!(error.message.contains("reaches past storage 0 of 4 elements"), "{error}");
    }
}
