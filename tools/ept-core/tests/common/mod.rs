// SPDX-License-Identifier: GPL-2.0

//! Helpers shared by the integration tests (each test file uses a part).

#![allow(dead_code)]

pub mod arena;
pub mod model;
pub mod raw;
pub mod record;
