//! The block reader: a worker's share of a JSON-lines file.
//!
//! A file is cut into fixed-size blocks and worker `w` of `n` reads blocks `w, w + n, …`; a
//! line belongs to the block it starts in, so every line is read by exactly one worker
//! whatever the block size. Standard input cannot be split: worker 0 reads all of it.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};

use super::Input;

/// Lines of one input that belong to one worker.
pub struct Lines(Share);

/// Where a worker's lines come from.
enum Share {
    /// Blocks `worker, worker + peers, …` of a file.
    Blocks { reader: BufReader<File>, len: u64, block: u64, next_block: u64, stride: u64, pos: u64, end: u64 },
    /// A whole stream (standard input on worker 0).
    Stream(Box<dyn BufRead>),
    /// Nothing (standard input on other workers).
    Empty,
}

impl Lines {
    /// Opens worker `worker`'s share (of `peers`) of `input`, cut into about `blocks`
    /// blocks of at least `min_block` bytes.
    pub fn open(input: &Input, blocks: u64, min_block: u64, worker: usize, peers: usize) -> io::Result<Lines> {
        match input {
            Input::Stdin if worker == 0 => Ok(Lines(Share::Stream(Box::new(BufReader::new(io::stdin()))))),
            Input::Stdin => Ok(Lines(Share::Empty)),
            Input::File(path) => {
                let file = File::open(path)?;
                let len = file.metadata()?.len();
                let block = len.div_ceil(blocks.max(1)).max(min_block);
                Ok(Lines(Share::Blocks {
                    reader: BufReader::with_capacity(256 * 1024, file),
                    len,
                    block,
                    next_block: worker as u64,
                    stride: peers as u64,
                    pos: 0,
                    end: 0,
                }))
            }
        }
    }

    /// Reads the next line into `buf` (without its newline); false at the end of this share.
    pub fn next(&mut self, buf: &mut Vec<u8>) -> io::Result<bool> {
        buf.clear();
        let read = match &mut self.0 {
            Share::Empty => return Ok(false),
            Share::Stream(reader) => reader.read_until(b'\n', buf)?,
            Share::Blocks { reader, len, block, next_block, stride, pos, end } => loop {
                if *pos < *end {
                    let n = reader.read_until(b'\n', buf)?;
                    *pos += n as u64;
                    break n;
                }
                let start = *next_block * *block;
                if start >= *len {
                    return Ok(false);
                }
                *next_block += *stride;
                *end = (start + *block).min(*len);
                if start == 0 {
                    reader.seek(SeekFrom::Start(0))?;
                    *pos = 0;
                } else {
                    // The line that straddles `start` belongs to the previous block.
                    reader.seek(SeekFrom::Start(start - 1))?;
                    let skipped = reader.read_until(b'\n', buf)?;
                    buf.clear();
                    *pos = start - 1 + skipped as u64;
                }
            },
        };
        if read == 0 {
            return Ok(false);
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        Ok(true)
    }
}

