//! Request bodies, read only by the routes that need one and never past their limit.
//!
//! The runtime hands the Worker a stream; reading it whole before routing let any POST
//! to any path fill the isolate's 128 MB. [`read_limited`] checks `Content-Length`
//! first and stops pulling chunks as soon as the limit is crossed.

/// A request body as a sequence of chunks.
#[allow(async_fn_in_trait)] // single-threaded runtime: futures need not be Send
pub trait BodySource {
    /// The next chunk, `None` at the end.
    async fn chunk(&mut self) -> Result<Option<Vec<u8>>, String>;
}

impl<T: BodySource> BodySource for &mut T {
    async fn chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        (**self).chunk().await
    }
}

/// No body (GET, HEAD, and tests that need none).
pub struct NoBody;

impl BodySource for NoBody {
    async fn chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }
}

/// A byte slice served in fixed-size chunks; counts how many were pulled.
pub struct Chunks<'a> {
    rest: &'a [u8],
    size: usize,
    pub pulled: usize,
}

impl<'a> Chunks<'a> {
    pub fn new(data: &'a [u8], size: usize) -> Chunks<'a> {
        Chunks {
            rest: data,
            size: size.max(1),
            pulled: 0,
        }
    }
}

impl BodySource for Chunks<'_> {
    async fn chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let (head, tail) = self.rest.split_at(self.size.min(self.rest.len()));
        self.rest = tail;
        self.pulled += 1;
        Ok(Some(head.to_vec()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("body could not be read: {0}")]
    Broken(String),
}

/// Reads at most `limit` bytes: refuses a declared length over it without reading, and
/// stops at the first chunk that crosses it (a missing or lying header changes nothing).
pub async fn read_limited(
    src: &mut impl BodySource,
    content_length: Option<u64>,
    limit: usize,
) -> Result<Vec<u8>, ReadError> {
    if content_length.is_some_and(|n| n > limit as u64) {
        return Err(ReadError::TooLarge(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = src.chunk().await.map_err(ReadError::Broken)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn reads_within_the_limit() {
        let data = vec![7u8; 10];
        let mut src = Chunks::new(&data, 3);
        assert_eq!(
            block_on(read_limited(&mut src, Some(10), 10)),
            Ok(data.clone())
        );
        assert_eq!(src.pulled, 4);
    }

    #[test]
    fn declared_length_over_the_limit_reads_nothing() {
        let data = vec![0u8; 100];
        let mut src = Chunks::new(&data, 10);
        let got = block_on(read_limited(&mut src, Some(101), 50));
        assert_eq!(got, Err(ReadError::TooLarge(50)));
        assert_eq!(src.pulled, 0);
    }

    #[test]
    fn stops_at_the_chunk_that_crosses_the_limit() {
        // The header understates the size: the limit still holds while streaming.
        let data = vec![0u8; 1_000];
        let mut src = Chunks::new(&data, 10);
        let got = block_on(read_limited(&mut src, Some(5), 45));
        assert_eq!(got, Err(ReadError::TooLarge(45)));
        assert_eq!(src.pulled, 5, "chunk 5 crosses 45 bytes; nothing after it");
    }
}
