//! PostgreSQL's binary COPY format, for bulk inserts (`COPY ... FROM STDIN (FORMAT binary)`).
//! One COPY sends a batch's rows in one message stream instead of one INSERT per row; the
//! rows are encoded up front so a COPY never starts with data that cannot be sent.

use uuid::Uuid;

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// A binary COPY stream under construction: `row(n)`, then exactly n fields per row.
pub struct BinaryCopy {
    buf: Vec<u8>,
}

impl BinaryCopy {
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(64 * 1024);
        buf.extend_from_slice(SIGNATURE);
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
        buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        Self { buf }
    }

    pub fn row(&mut self, fields: u16) {
        self.buf.extend_from_slice(&(fields as i16).to_be_bytes());
    }

    pub fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    fn field(&mut self, len: usize) {
        // Request bodies are far below 2 GiB; a saturated length would make Postgres reject
        // the stream, never write a wrong row.
        self.buf.extend_from_slice(&i32::try_from(len).unwrap_or(i32::MAX).to_be_bytes());
    }

    pub fn uuid(&mut self, id: Uuid) {
        self.field(16);
        self.buf.extend_from_slice(id.as_bytes());
    }

    pub fn text(&mut self, s: Option<&str>) {
        let Some(s) = s else { return self.null() };
        self.field(s.len());
        self.buf.extend_from_slice(s.as_bytes());
    }

    pub fn int4(&mut self, n: Option<i32>) {
        let Some(n) = n else { return self.null() };
        self.field(4);
        self.buf.extend_from_slice(&n.to_be_bytes());
    }

    /// jsonb's binary form: a version byte (1), then the JSON text.
    pub fn jsonb(&mut self, v: Option<&serde_json::Value>) {
        let Some(v) = v else { return self.null() };
        let text = v.to_string();
        self.field(1 + text.len());
        self.buf.push(1);
        self.buf.extend_from_slice(text.as_bytes());
    }

    /// pgvector's binary form (`vector_recv`): dimensions (int16), an unused int16, float4s.
    pub fn vector(&mut self, v: Option<&[f32]>) {
        let Some(v) = v else { return self.null() };
        self.field(4 + 4 * v.len());
        // pgvector's limit (16,000) fits an int16; the column's typmod rejects other sizes.
        self.buf.extend_from_slice(&i16::try_from(v.len()).unwrap_or(i16::MAX).to_be_bytes());
        self.buf.extend_from_slice(&0i16.to_be_bytes());
        for x in v {
            self.buf.extend_from_slice(&x.to_be_bytes());
        }
    }

    /// The finished stream, with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}

impl Default for BinaryCopy {
    fn default() -> Self {
        Self::new()
    }
}
