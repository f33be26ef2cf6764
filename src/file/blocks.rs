//! The block reader: a worker's share of a JSON-lines file.
//!
//! A file is cut into fixed-size blocks and worker `w` of `n` reads blocks `w, w + n, …`; a
//! line belongs to the block it starts in, so every line is read by exactly one worker
//! whatever the block size. Standard input cannot be split: worker 0 reads all of it.
//!
//! On request a share also knows each line's number in its file (for the rejects output): a
//! second handle counts the newlines before each block the worker starts.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};

use super::Input;

/// Lines of one input that belong to one worker.
pub struct Lines {
    share: Share,
    /// 1-based number of the line last read (0 before the first), when counted.
    line: u64,
    /// Counts the newlines before a block, when line numbers are wanted.
    counter: Option<Counter>,
}

/// Newlines of a file counted up to a position, moving forward only.
struct Counter {
    file: File,
    at: u64,
    newlines: u64,
}

impl Counter {
    /// The newlines in bytes `[0, to)`.
    fn newlines_before(&mut self, to: u64) -> io::Result<u64> {
        let mut chunk = vec![0u8; 1 << 20];
        self.file.seek(SeekFrom::Start(self.at))?;
        while self.at < to {
            let want = usize::try_from(to - self.at).unwrap_or(usize::MAX).min(chunk.len());
            let n = self.file.read(&mut chunk[..want])?;
            if n == 0 {
                break;
            }
            self.newlines += chunk[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            self.at += n as u64;
        }
        Ok(self.newlines)
    }
}

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
    /// blocks of at least `min_block` bytes; `numbered`: keep count of line numbers.
    pub fn open(input: &Input, blocks: u64, min_block: u64, worker: usize, peers: usize, numbered: bool) -> io::Result<Lines> {
        let lines = |share, counter| Lines { share, line: 0, counter };
        match input {
            Input::Stdin if worker == 0 => Ok(lines(Share::Stream(Box::new(BufReader::new(io::stdin()))), None)),
            Input::Stdin => Ok(lines(Share::Empty, None)),
            Input::File(path) => {
                let file = File::open(path)?;
                let len = file.metadata()?.len();
                let block = len.div_ceil(blocks.max(1)).max(min_block);
                let counter = if numbered { Some(Counter { file: File::open(path)?, at: 0, newlines: 0 }) } else { None };
                Ok(lines(Share::Blocks {
                    reader: BufReader::with_capacity(256 * 1024, file),
                    len,
                    block,
                    next_block: worker as u64,
                    stride: peers as u64,
                    pos: 0,
                    end: 0,
                }, counter))
            }
        }
    }

    /// The 1-based number in its file of the line last read (counted only if opened
    /// `numbered`, and always for standard input).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Reads the next line into `buf` (without its newline); false at the end of this share.
    pub fn next(&mut self, buf: &mut Vec<u8>) -> io::Result<bool> {
        buf.clear();
        let read = match &mut self.share {
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
                    self.line = 0;
                } else {
                    if let Some(counter) = &mut self.counter {
                        // The skip below reads one line more: the one ending at or after `start - 1`.
                        self.line = counter.newlines_before(start - 1)? + 1;
                    }
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
        self.line += 1;
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        Ok(true)
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_shares_know_each_lines_number_in_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.jsonl");
        // Lines of different lengths, a blank one and a last line without its newline.
        let text: Vec<String> = (1..=200).map(|n| if n == 50 { String::new() } else { format!("line {n} {}", "x".repeat(n % 7)) }).collect();
        std::fs::write(&path, text.join("\n")).expect("write");
        for (blocks, peers) in [(1, 1), (7, 2), (40, 3)] {
            let mut seen = Vec::new();
            for worker in 0..peers {
                let mut lines = Lines::open(&Input::File(path.clone()), blocks, 1, worker, peers, true).expect("open");
                let mut buf = Vec::new();
                while lines.next(&mut buf).expect("read") {
                    let n = lines.line();
                    assert_eq!(String::from_utf8_lossy(&buf), text[n as usize - 1], "blocks {blocks}, peers {peers}, line {n}");
                    seen.push(n);
                }
            }
            seen.sort_unstable();
            assert_eq!(seen, (1..=200).collect::<Vec<u64>>(), "every line once, blocks {blocks}, peers {peers}");
        }
    }
}
