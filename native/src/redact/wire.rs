//! Just enough of the protobuf wire format to walk an OTLP request's string values where they
//! lie in the encoded bytes: no copy of the request is built (a decoded 576 KB request is some
//! 5,000 allocations, which cost more time than the walk and stay as resident memory).
//! A request this reader cannot take (a group, a truncated field, a string that is no UTF-8)
//! is None: the Python walk then looks at every value.

/// One field of a message: its number and its value.
pub enum Field<'a> {
    Scalar,
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

/// The fields of an encoded message, in order; None for each that does not read (the
/// caller gives up on the message).
pub fn fields(buf: &[u8]) -> impl Iterator<Item = Option<(u32, Field<'_>)>> {
    let mut at = 0;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || at >= buf.len() {
            return None;
        }
        let field = next(buf, &mut at);
        failed = field.is_none();
        Some(field)
    })
}

fn next<'a>(buf: &'a [u8], at: &mut usize) -> Option<(u32, Field<'a>)> {
    let key = varint(buf, at)?;
    let number = u32::try_from(key >> 3).ok()?;
    let field = match key & 7 {
        0 => {
            varint(buf, at)?;
            Field::Scalar
        }
        1 | 5 => {
            let size = if key & 7 == 1 { 8 } else { 4 };
            buf.get(*at..*at + size)?;
            *at += size;
            Field::Scalar
        }
        2 => {
            let len = usize::try_from(varint(buf, at)?).ok()?;
            let bytes = buf.get(*at..at.checked_add(len)?)?;
            *at += len;
            Field::Bytes(bytes)
        }
        _ => return None, // groups (3, 4) are not in OTLP
    };
    Some((number, field))
}

/// The length-delimited values of field `number`, in order (a repeated message field's
/// elements); None when the message does not read.
pub fn repeated(buf: &[u8], number: u32) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    for field in fields(buf) {
        match field? {
            (n, Field::Bytes(bytes)) if n == number => out.push(bytes),
            (n, _) if n == number => return None,
            _ => {}
        }
    }
    Some(out)
}

/// An OTLP AnyValue as far as redaction looks at it.
pub enum Any<'a> {
    Str(&'a str),
    Array(&'a [u8]),
    List(&'a [u8]),
    Other,
}

/// The value an encoded AnyValue holds; None when it does not read, a string is no UTF-8, or
/// its oneof is set more than once (parsers merge or take the last: Python's to sort out).
pub fn any_value(buf: &[u8]) -> Option<Any<'_>> {
    let mut value = None;
    for field in fields(buf) {
        let this = match field? {
            (1, Field::Bytes(bytes)) => Any::Str(std::str::from_utf8(bytes).ok()?),
            (5, Field::Bytes(bytes)) => Any::Array(bytes),
            (6, Field::Bytes(bytes)) => Any::List(bytes),
            (1..=7, _) => Any::Other,
            _ => continue,
        };
        once(&mut value, this)?;
    }
    Some(value.unwrap_or(Any::Other))
}

/// An encoded KeyValue: its key and its value (None when it has none); None when it does not
/// read or holds either twice.
pub fn key_value(buf: &[u8]) -> Option<(&str, Option<&[u8]>)> {
    let (mut key, mut value) = (None, None);
    for field in fields(buf) {
        match field? {
            (1, Field::Bytes(bytes)) => once(&mut key, std::str::from_utf8(bytes).ok()?)?,
            (2, Field::Bytes(bytes)) => once(&mut value, bytes)?,
            (1 | 2, _) => return None,
            _ => {}
        }
    }
    Some((key.unwrap_or(""), value))
}

/// The value of singular message field `number`, if set; None when the message does not read
/// or holds it twice.
pub fn single(buf: &[u8], number: u32) -> Option<Option<&[u8]>> {
    let mut found = None;
    for field in fields(buf) {
        match field? {
            (n, Field::Bytes(bytes)) if n == number => once(&mut found, bytes)?,
            (n, _) if n == number => return None,
            _ => {}
        }
    }
    Some(found)
}

/// Sets `slot`, or None when it was set already.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    slot.replace(value).is_none().then_some(())
}
