//! `super`: every superblock field, with its unit and meaning, as dumpe2fs -h prints them.

use aegisfs_format::disk::{
    SuperBlock, ERRORS_CONTINUE, ERRORS_PANIC, ERRORS_REMOUNT_RO, FEATURE_COMPAT_HAS_JOURNAL,
    FEATURE_COMPAT_XATTR, FEATURE_INCOMPAT_DIR_INDEX, FEATURE_INCOMPAT_RECOVER, MAGIC, STATE_CLEAN,
    STATE_ERRORS,
};

use super::{corrupt, escape_name, size_of_blocks, utc, Inspector, Res};

/// Names of the defined bits of each feature set.
const COMPAT: &[(u64, &str)] = &[
    (FEATURE_COMPAT_HAS_JOURNAL, "has_journal"),
    (FEATURE_COMPAT_XATTR, "xattr"),
];
const INCOMPAT: &[(u64, &str)] = &[
    (FEATURE_INCOMPAT_RECOVER, "recover"),
    (FEATURE_INCOMPAT_DIR_INDEX, "dir_index"),
];

/// `0xBITS name name ... unknown 0xBITS`, or `0x0 (none)`.
pub(super) fn flag_names(bits: u64, known: &[(u64, &str)]) -> String {
    let mut s = format!("0x{bits:x}");
    if bits == 0 {
        s.push_str(" (none)");
        return s;
    }
    let mut rest = bits;
    for &(bit, name) in known {
        if bits & bit != 0 {
            s.push(' ');
            s.push_str(name);
            rest &= !bit;
        }
    }
    if rest != 0 {
        s.push_str(&format!(" unknown 0x{rest:x}"));
    }
    s
}

fn time_or_never(sec: i64) -> String {
    if sec == 0 {
        "never".to_string()
    } else {
        format!("{sec} ({})", utc(sec, None))
    }
}

/// The UUID in its usual 8-4-4-4-12 form.
pub(super) fn uuid_string(u: &[u8; 16]) -> String {
    let hex: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

pub(super) fn show(ins: &mut Inspector) -> Res<()> {
    let block0 = ins.read(0)?;
    let sb = SuperBlock::in_block(&block0);
    if sb.magic != MAGIC {
        return corrupt(format_args!(
            "bad superblock magic {} (expected \"AegisFS\\0\"): not an AegisFS filesystem",
            escape_name(&sb.magic)
        ));
    }
    let validation = sb.validate(ins.dev.blocks);
    let o = &mut *ins.out;
    let blocks = sb.blocks_count.get();
    writeln!(o, "Filesystem magic:         \"AegisFS\\0\"")?;
    writeln!(o, "Format version:           {}", sb.format_version.get())?;
    let log2 = sb.block_size_log2.get();
    let bsize = 1u64
        .checked_shl(log2)
        .map_or("?".to_string(), |b| b.to_string());
    writeln!(o, "Block size:               {bsize} bytes (log2 {log2})")?;
    writeln!(
        o,
        "Blocks count:             {blocks} ({}; device holds {} blocks)",
        size_of_blocks(blocks),
        ins.dev.blocks
    )?;
    writeln!(
        o,
        "Free blocks:              {} (data blocks not in use)",
        sb.free_blocks.get()
    )?;
    writeln!(
        o,
        "Reserved blocks:          {} (kept for uid {} / gid {})",
        sb.reserved_blocks.get(),
        sb.reserved_uid.get(),
        sb.reserved_gid.get()
    )?;
    writeln!(o, "Inodes count:             {}", sb.inodes_count.get())?;
    writeln!(o, "Free inodes:              {}", sb.free_inodes.get())?;
    writeln!(
        o,
        "First group block:        {}",
        sb.first_group_block.get()
    )?;
    writeln!(o, "Blocks per group:         {}", sb.blocks_per_group.get())?;
    writeln!(o, "Inodes per group:         {}", sb.inodes_per_group.get())?;
    writeln!(o, "Group count:              {}", sb.group_count.get())?;
    writeln!(o, "Inode size:               {} bytes", sb.inode_size.get())?;
    writeln!(
        o,
        "Group descriptor table:   {} block(s) from block {}",
        sb.gdt_blocks.get(),
        sb.gdt_start.get()
    )?;
    writeln!(
        o,
        "Root / first / lost+found inode: {} / {} / {}",
        sb.root_ino.get(),
        sb.first_ino.get(),
        sb.lost_found_ino.get()
    )?;
    let (jstart, jblocks) = (sb.journal_start.get(), sb.journal_blocks.get());
    if jblocks == 0 {
        writeln!(o, "Journal:                  none (start {jstart})")?;
    } else {
        writeln!(
            o,
            "Journal:                  blocks {jstart}..{} ({jblocks} blocks, {})",
            jstart.saturating_add(jblocks - 1),
            size_of_blocks(jblocks)
        )?;
    }
    writeln!(
        o,
        "Features compat:          {}",
        flag_names(sb.feature_compat.get(), COMPAT)
    )?;
    writeln!(
        o,
        "Features incompat:        {}",
        flag_names(sb.feature_incompat.get(), INCOMPAT)
    )?;
    writeln!(
        o,
        "Features ro_compat:       {}",
        flag_names(sb.feature_ro_compat.get(), &[])
    )?;
    let state = sb.state.get();
    let state_names = flag_names(
        u64::from(state),
        &[
            (u64::from(STATE_CLEAN), "clean"),
            (u64::from(STATE_ERRORS), "errors"),
        ],
    );
    let not_clean = if state & STATE_CLEAN == 0 {
        " (not clean: mounted, or not unmounted cleanly)"
    } else {
        ""
    };
    writeln!(o, "State:                    {state_names}{not_clean}")?;
    let behavior = match sb.errors_behavior.get() {
        ERRORS_CONTINUE => "continue",
        ERRORS_REMOUNT_RO => "remount read-only",
        ERRORS_PANIC => "panic",
        _ => "invalid",
    };
    writeln!(
        o,
        "Errors behavior:          {} ({behavior})",
        sb.errors_behavior.get()
    )?;
    let max = match sb.max_mount_count.get() {
        0 => "no limit".to_string(),
        m => m.to_string(),
    };
    writeln!(
        o,
        "Mount count:              {} (maximum: {max})",
        sb.mount_count.get()
    )?;
    writeln!(
        o,
        "Created:                  {}",
        time_or_never(sb.mkfs_time.get())
    )?;
    writeln!(
        o,
        "Last mount:               {}",
        time_or_never(sb.mount_time.get())
    )?;
    writeln!(
        o,
        "Last write:               {}",
        time_or_never(sb.write_time.get())
    )?;
    writeln!(
        o,
        "Last check:               {}",
        time_or_never(sb.check_time.get())
    )?;
    writeln!(o, "UUID:                     {}", uuid_string(&sb.uuid))?;
    let label_len = sb.label.iter().position(|&b| b == 0).unwrap_or(64);
    let label = &sb.label[..label_len];
    if label.is_empty() {
        writeln!(o, "Label:                    <none>")?;
    } else {
        writeln!(o, "Label:                    \"{}\"", escape_name(label))?;
    }
    writeln!(
        o,
        "Checksum seed:            0x{:08x}",
        sb.checksum_seed.get()
    )?;
    let orphan = match sb.last_orphan.get() {
        0 => "0 (empty)".to_string(),
        i => format!("inode {i}"),
    };
    writeln!(o, "Orphan list head:         {orphan}")?;
    writeln!(o, "Errors recorded:          {}", sb.error_count.get())?;
    writeln!(
        o,
        "First error:              {}",
        time_or_never(sb.first_error_time.get())
    )?;
    writeln!(
        o,
        "Last error:               {}",
        time_or_never(sb.last_error_time.get())
    )?;
    let key: String = sb.dir_hash_key.iter().map(|b| format!("{b:02x}")).collect();
    writeln!(o, "Directory hash key:       {key}")?;
    let nonzero = sb.reserved.iter().filter(|&&b| b != 0).count();
    let reserved_ok = nonzero == 0;
    let (stored, want) = (sb.checksum.get(), sb.compute_checksum());
    let csum = if stored == want {
        format!("0x{stored:08x} ok")
    } else {
        format!("0x{stored:08x} {} (computed 0x{want:08x})", ins.bad())
    };
    let o = &mut *ins.out;
    writeln!(o, "Checksum:                 {csum}")?;
    let reserved = if reserved_ok {
        "all zero".to_string()
    } else {
        format!("{nonzero} non-zero byte(s) {}", ins.bad())
    };
    writeln!(ins.out, "Reserved bytes:           {reserved}")?;
    let verdict = match validation {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("{}: {}", ins.bad(), e.msg()),
    };
    writeln!(ins.out, "Validation:               {verdict}")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_names() {
        assert_eq!(flag_names(0, COMPAT), "0x0 (none)");
        assert_eq!(flag_names(3, COMPAT), "0x3 has_journal xattr");
        assert_eq!(flag_names(0x12, INCOMPAT), "0x12 dir_index unknown 0x10");
        assert_eq!(
            flag_names(1 << 63, &[]),
            "0x8000000000000000 unknown 0x8000000000000000"
        );
    }

    #[test]
    fn uuid_form() {
        let u: [u8; 16] = core::array::from_fn(|i| i as u8 * 17);
        assert_eq!(uuid_string(&u), "00112233-4455-6677-8899-aabbccddeeff");
    }
}
