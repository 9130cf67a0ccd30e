// SPDX-License-Identifier: GPL-2.0

//! The recording file: gzip of JSON lines, a header line then one
//! snapshot per line (`docs/record.md` is the format's description).
//!
//! Each snapshot keeps the raw text of the module's files, so a recording
//! is parsed by the same parsers as `/proc` and no second format can
//! drift. The writer flushes the compressor after every snapshot: a
//! recording cut short (Ctrl-C, a full disk, a crash) still yields every
//! snapshot before the cut.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};

use flate2::bufread::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::model::RawSnapshot;
use crate::source::io_error;

/// The `format` of the header line.
pub const MAGIC: &str = "ept-sampler-record";

/// The format version this tool writes and reads. Bumped by any change an
/// older reader would misread; readers refuse other versions.
pub const VERSION: u32 = 1;

/// The first line of a recording.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`MAGIC`].
    pub format: String,
    /// The format version ([`VERSION`]).
    pub version: u32,
    /// The tool that wrote it (`ept-sampler 0.1.0`).
    pub tool: String,
    /// When recording began, ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// The sampling interval asked for, ms.
    pub interval_ms: u64,
    /// The duration asked for, ms.
    pub duration_ms: u64,
    /// The VMs asked for (`<pid>-<fd>`); empty for every VM.
    pub vms: Vec<String>,
    /// The host's `/proc/ept_sampler/version` when recording began.
    pub host_version: String,
}

impl Header {
    /// A header of the current format.
    pub fn new(
        started_unix_ms: u64,
        interval_ms: u64,
        duration_ms: u64,
        vms: Vec<String>,
        host_version: String,
    ) -> Header {
        Header {
            format: MAGIC.to_string(),
            version: VERSION,
            tool: format!("ept-sampler {}", env!("CARGO_PKG_VERSION")),
            started_unix_ms,
            interval_ms,
            duration_ms,
            vms,
            host_version,
        }
    }
}

/// Writes a recording.
pub struct Writer {
    out: GzEncoder<BufWriter<File>>,
    path: PathBuf,
}

impl Writer {
    /// Creates (or truncates) `path` and writes the header.
    pub fn create(path: &Path, header: &Header) -> Result<Writer, Error> {
        let file = File::create(path).map_err(|e| io_error(path.to_path_buf(), e))?;
        let mut w = Writer {
            out: GzEncoder::new(BufWriter::new(file), Compression::default()),
            path: path.to_path_buf(),
        };
        w.line(header)?;
        Ok(w)
    }

    /// Appends one snapshot, readable as soon as this returns.
    pub fn write(&mut self, snap: &RawSnapshot) -> Result<(), Error> {
        self.line(snap)
    }

    fn line<T: Serialize>(&mut self, value: &T) -> Result<(), Error> {
        let io = |e| io_error(self.path.clone(), e);
        serde_json::to_writer(&mut self.out, value)
            .map_err(std::io::Error::from)
            .map_err(io)?;
        self.out.write_all(b"\n").map_err(io)?;
        // A sync flush: everything so far decodes even if the process dies
        // before `finish` writes the gzip trailer.
        self.out.flush().map_err(io)
    }

    /// Ends the gzip stream and closes the file.
    pub fn finish(self) -> Result<(), Error> {
        let path = self.path;
        let mut inner = self.out.finish().map_err(|e| io_error(path.clone(), e))?;
        inner.flush().map_err(|e| io_error(path.clone(), e))?;
        inner
            .get_ref()
            .sync_all()
            .map_err(|e| io_error(path.clone(), e))
    }
}

/// Reads a recording back, snapshot by snapshot.
///
/// Also reads an uncompressed recording (the same lines, e.g. after
/// `zcat`). A recording cut short ends at its last complete snapshot
/// ([`Reader::truncated`] says so); a damaged line anywhere else is an
/// error.
pub struct Reader {
    lines: Box<dyn BufRead>,
    path: PathBuf,
    header: Header,
    line_no: usize,
    truncated: bool,
    done: bool,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("path", &self.path)
            .field("header", &self.header)
            .field("line_no", &self.line_no)
            .finish_non_exhaustive()
    }
}

/// What reading one line gave.
enum Line {
    /// A complete line (without its newline).
    Text(String),
    /// The end of the data, clean.
    End,
    /// The end of the data in the middle of a line or of the compressed
    /// stream: the file was cut short.
    Cut,
}

impl Reader {
    /// Opens a recording and checks its header.
    pub fn open(path: &Path) -> Result<Reader, Error> {
        let file = File::open(path).map_err(|e| io_error(path.to_path_buf(), e))?;
        let mut raw = BufReader::new(file);
        let start = raw
            .fill_buf()
            .map_err(|e| io_error(path.to_path_buf(), e))?;
        let lines: Box<dyn BufRead> = match start {
            [0x1f, 0x8b, ..] => Box::new(BufReader::new(GzDecoder::new(raw))),
            [b'{', ..] => Box::new(raw),
            [] => return Err(bad(path, "empty file, not an ept-sampler recording")),
            _ => {
                return Err(bad(
                    path,
                    "not an ept-sampler recording (neither gzip nor JSON lines)",
                ))
            }
        };
        let mut r = Reader {
            lines,
            path: path.to_path_buf(),
            header: Header::new(0, 0, 0, Vec::new(), String::new()),
            line_no: 0,
            truncated: false,
            done: false,
        };
        let first = match r.next_line()? {
            Line::Text(t) => t,
            Line::End | Line::Cut => {
                return Err(bad(
                    path,
                    "no header line: the recording is empty or cut short",
                ))
            }
        };
        r.header = parse_header(path, &first)?;
        Ok(r)
    }

    /// The header line.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Whether the file ended in the middle of a snapshot (a recording
    /// that was interrupted); true only once iteration reached that end.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    fn next_line(&mut self) -> Result<Line, Error> {
        let mut buf = Vec::new();
        match self.lines.read_until(b'\n', &mut buf) {
            Ok(0) => Ok(Line::End),
            Ok(_) => {
                self.line_no += 1;
                if buf.last() != Some(&b'\n') {
                    return Ok(Line::Cut);
                }
                buf.pop();
                String::from_utf8(buf)
                    .map(Line::Text)
                    .map_err(|_| self.bad_line("not UTF-8"))
            }
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(Line::Cut),
            Err(e) if matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::InvalidData) => {
                Err(bad(
                    &self.path,
                    &format!(
                        "damaged compressed data near line {}: {e}",
                        self.line_no + 1
                    ),
                ))
            }
            Err(e) => Err(io_error(self.path.clone(), e)),
        }
    }

    fn bad_line(&self, what: &str) -> Error {
        bad(&self.path, &format!("line {}: {what}", self.line_no))
    }
}

impl Iterator for Reader {
    type Item = Result<RawSnapshot, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let text = match self.next_line() {
            Ok(Line::Text(t)) => t,
            Ok(Line::End) => {
                self.done = true;
                return None;
            }
            Ok(Line::Cut) => {
                self.done = true;
                self.truncated = true;
                return None;
            }
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        match serde_json::from_str::<RawSnapshot>(&text) {
            Ok(s) => Some(Ok(s)),
            Err(e) => {
                self.done = true;
                Some(Err(self.bad_line(&format!("not a snapshot: {e}"))))
            }
        }
    }
}

fn bad(path: &Path, what: &str) -> Error {
    Error::Format {
        file: path.display().to_string(),
        what: what.to_string(),
    }
}

fn parse_header(path: &Path, line: &str) -> Result<Header, Error> {
    // The magic and version first, on their own: a newer format may change
    // the other fields, and its reader should be told about the version,
    // not about a missing field.
    #[derive(Deserialize)]
    struct Probe {
        format: Option<String>,
        version: Option<u32>,
    }
    let probe: Probe = serde_json::from_str(line).map_err(|_| {
        bad(
            path,
            "not an ept-sampler recording (its first line is not its header)",
        )
    })?;
    if probe.format.as_deref() != Some(MAGIC) {
        return Err(bad(
            path,
            "not an ept-sampler recording (its first line is not its header)",
        ));
    }
    match probe.version {
        Some(VERSION) => {}
        Some(v) if v > VERSION => {
            return Err(bad(
                path,
                &format!(
                    "recording format version {v} is newer than this ept-sampler reads ({VERSION}): use a newer ept-sampler"
                ),
            ))
        }
        Some(v) => {
            return Err(bad(
                path,
                &format!("recording format version {v} is not one this ept-sampler reads ({VERSION})"),
            ))
        }
        None => return Err(bad(path, "header without a format version")),
    }
    serde_json::from_str(line).map_err(|e| bad(path, &format!("bad header: {e}")))
}

/// Reads every snapshot of a recording; an interrupted recording gives
/// the snapshots before the cut and `true`.
pub fn read_all(path: &Path) -> Result<(Header, Vec<RawSnapshot>, bool), Error> {
    let mut r = Reader::open(path)?;
    let mut snaps = Vec::new();
    for s in r.by_ref() {
        snaps.push(s?);
    }
    Ok((r.header.clone(), snaps, r.truncated))
}
