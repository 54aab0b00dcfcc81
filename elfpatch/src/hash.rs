//! `--rename-dynamic-symbols`: new names appended to `.dynstr`, then `.gnu.hash` / `.hash` rebuilt.

use crate::error::{Error, Result};
use crate::model::Elf;

impl Elf {
    pub fn rename_dynamic_symbols(&mut self, _map: &[(String, String)]) -> Result<()> {
        Err(Error::unsupported(
            "--rename-dynamic-symbols is not implemented yet",
        ))
    }
}
