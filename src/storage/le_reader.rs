//! A bounds-checked cursor over a little-endian record payload, for the small internal logs
//! (the group offsets log, the transaction log) whose records are framed and CRC-checked
//! before they reach it. Every read returns `None` past the end, never panics: the bytes come
//! from a file. Must not: know any record layout.

pub struct LeReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> LeReader<'a> {
    pub fn new(buf: &'a [u8]) -> LeReader<'a> {
        LeReader { buf, pos: 0 }
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub fn i16(&mut self) -> Option<i16> {
        self.take(2)?.try_into().ok().map(i16::from_le_bytes)
    }

    pub fn i32(&mut self) -> Option<i32> {
        self.take(4)?.try_into().ok().map(i32::from_le_bytes)
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }

    pub fn i64(&mut self) -> Option<i64> {
        self.take(8)?.try_into().ok().map(i64::from_le_bytes)
    }

    /// A UTF-8 string after a u16 length.
    pub fn str16(&mut self) -> Option<String> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().ok()?);
        String::from_utf8(self.take(usize::from(len))?.to_vec()).ok()
    }

    /// A UTF-8 string after a u32 length.
    pub fn str32(&mut self) -> Option<String> {
        let len = self.u32()?;
        String::from_utf8(self.take(len as usize)?.to_vec()).ok()
    }

    /// Whether every byte was read.
    pub fn is_at_end(&self) -> bool {
        self.pos == self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_in_order_and_stops_at_the_end() {
        let mut bytes = vec![7u8];
        bytes.extend_from_slice(&(-2i16).to_le_bytes());
        bytes.extend_from_slice(&3u16.to_le_bytes());
        bytes.extend_from_slice(b"abc");
        let mut r = LeReader::new(&bytes);
        assert_eq!(r.u8(), Some(7));
        assert_eq!(r.i16(), Some(-2));
        assert_eq!(r.str16().as_deref(), Some("abc"));
        assert!(r.is_at_end());
        assert_eq!(r.i64(), None);
        let mut short = LeReader::new(&[5, 0, b'a']);
        assert_eq!(short.str16(), None, "a length past the end");
    }
}
