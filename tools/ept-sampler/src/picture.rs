// SPDX-License-Identifier: GPL-2.0

//! Pictures of a VM's heat: address x heat (from `heatmap`) and address x
//! time (from `history`), as PNG or SVG, drawn with plotters.

use std::path::Path;

use crate::error::Error;
use crate::model::VmSnapshot;

/// The picture file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PictureFormat {
    /// PNG bitmap.
    Png,
    /// SVG vector picture.
    Svg,
}

/// Draws `vm`'s heat map (and its history, when it has one) into `path`,
/// `width` x `height` pixels.
pub fn write(
    _vm: &VmSnapshot,
    _path: &Path,
    _format: PictureFormat,
    _width: u32,
    _height: u32,
) -> Result<(), Error> {
    Err(Error::Other("pictures are not built yet".into()))
}
