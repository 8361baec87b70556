//! fsck.aegisfs on extended attributes: valid inline areas and xattr blocks pass, each kind
//! of damage is reported by `-n` and repaired by `-fy` (the area or block is dropped), and
//! a block shared by two inodes is cloned with a checksum for its new number.

mod common;

use aegisfs_format::disk::{Inode, BLOCK_SIZE};
use aegisfs_format::xattr::{
    acl_encode, acl_value_len, inline_area, inline_area_mut, inline_used, insert, validate_inline,
    AclEntry, XattrBlock, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER, ACL_USER, ACL_USER_OBJ,
    XATTR_INDEX_POSIX_ACL_ACCESS, XATTR_INDEX_SECURITY, XATTR_INDEX_TRUSTED, XATTR_INDEX_USER,
};
use common::fsck::{
    detect_repair, edit_inode, edit_inode_raw, fsck, ino_of, make_fs, read_block, take_block,
    write_block, Block,
};
use common::{mkfs_ok, Image, Scratch};
use std::path::Path;

type Entries<'a> = &'a [(u8, &'a [u8], &'a [u8])];
/// A damage case: its name, the damage, and the reason fsck must give.
type Case<'a, T> = (&'a str, &'a dyn Fn(&mut T), &'a str);

fn acl_value() -> Vec<u8> {
    let e = |tag, perm, id| AclEntry { tag, perm, id };
    let entries = [
        e(ACL_USER_OBJ, 6, 0),
        e(ACL_USER, 4, 1000),
        e(ACL_GROUP_OBJ, 4, 0),
        e(ACL_MASK, 4, 0),
        e(ACL_OTHER, 0, 0),
    ];
    let mut v = vec![0u8; acl_value_len(entries.len())];
    let n = acl_encode(entries.into_iter(), &mut v).unwrap();
    v.truncate(n);
    v
}

/// Writes `entries` into the inline area of inode `ino` (then `f` on the raw inode).
fn set_inline(img: &Path, ino: u32, entries: Entries, f: impl FnOnce(&mut [u8])) {
    edit_inode_raw(img, ino, |raw| {
        let mut used = inline_used(raw);
        for &(i, n, v) in entries {
            used = insert(inline_area_mut(raw), used, i, n, v)
                .unwrap()
                .unwrap();
        }
        Inode::from_slot_mut(raw)
            .unwrap()
            .extra_size
            .set(used as u16);
        f(raw);
    });
}

/// The contents of a valid xattr block numbered `b` holding `entries`, then `f`, then its
/// checksum.
fn xattr_block(
    img: &Path,
    b: u64,
    entries: Entries,
    f: impl FnOnce(&mut XattrBlock),
) -> Box<Block> {
    let seed = Image::open(img).seed();
    let mut blk = Box::new([0u8; BLOCK_SIZE]);
    let x = XattrBlock::from_block_mut(&mut blk);
    x.init();
    for &(i, n, v) in entries {
        let used = x.used();
        let used = insert(&mut x.area, used, i, n, v).unwrap().unwrap();
        x.set_used(used);
    }
    f(x);
    x.update_checksum(seed, b);
    blk
}

/// Gives inode `ino` a new xattr block holding `entries` (`f` damages it before its checksum
/// is computed); returns its number.
fn give_block(img: &Path, ino: u32, entries: Entries, f: impl FnOnce(&mut XattrBlock)) -> u64 {
    let b = take_block(img);
    write_block(img, b, &xattr_block(img, b, entries, f));
    edit_inode(img, ino, true, |i| {
        i.xattr_block.set(b);
        i.blocks.set(i.blocks.get() + 1);
    });
    b
}

fn clean(img: &Path) {
    let (code, out) = fsck(img, &["-fn"]);
    assert_eq!(code, 0, "{out}");
}

const SOME: Entries = &[
    (XATTR_INDEX_USER, b"colour", b"blue"),
    (XATTR_INDEX_TRUSTED, b"t", b""),
];

#[test]
fn valid_xattrs_are_clean() {
    let fs = make_fs("xvalid");
    let acl = acl_value();
    for path in ["a", "d1", "ln", "longln"] {
        let ino = ino_of(&fs.img, path);
        set_inline(
            &fs.img,
            ino,
            &[(XATTR_INDEX_POSIX_ACL_ACCESS, b"", &acl)],
            |_| {},
        );
        give_block(
            &fs.img,
            ino,
            &[
                (XATTR_INDEX_USER, b"big", &[0x5A; 4000]),
                (XATTR_INDEX_SECURITY, b"selinux", b"ctx"),
            ],
            |_| {},
        );
    }
    clean(&fs.img);
    let im = Image::open(&fs.img);
    assert_eq!(im.inode(ino_of(&fs.img, "ln")).i().blocks.get(), 1);
    im.check();
}

#[test]
fn block_only_with_small_inodes() {
    let t = Scratch::new("xsmall");
    let img = t.join("img");
    mkfs_ok(&["-q", "-I", "256", img.to_str().unwrap(), "64M"]);
    give_block(&img, 2, SOME, |_| {});
    clean(&img);
    // A 256-byte inode has no inline area: any extra_size is wrong.
    edit_inode(&img, 2, true, |i| i.extra_size.set(4));
    detect_repair(&img, "Inode 2 has an invalid extra size 4");
}

#[test]
fn inline_padding_not_zero() {
    let fs = make_fs("xpad");
    let a = ino_of(&fs.img, "a");
    // "colour" + "blue": 14 bytes, 2 of padding.
    set_inline(&fs.img, a, SOME, |raw| inline_area_mut(raw)[15] = 1);
    detect_repair(
        &fs.img,
        &format!("Inode {a} has a corrupt inline xattr area (xattr entry malformed); clear it"),
    );
    let r = Image::open(&fs.img).inode(a);
    assert_eq!(r.i().extra_size.get(), 0);
    assert!(inline_area(&r.raw).iter().all(|&b| b == 0));
}

#[test]
fn inline_rules() {
    let cases: [Case<[u8]>; 5] = [
        (
            "used length",
            &|raw| Inode::from_slot_mut(raw).unwrap().extra_size.set(18),
            "xattr area used length or tail invalid",
        ),
        (
            "unknown index",
            &|raw| inline_area_mut(raw)[0] = 5,
            "xattr entry name or index invalid",
        ),
        (
            "duplicate",
            &|raw| {
                let used = inline_used(raw);
                let used = insert(
                    inline_area_mut(raw),
                    used,
                    XATTR_INDEX_USER,
                    b"colour",
                    b"x",
                )
                .unwrap();
                Inode::from_slot_mut(raw)
                    .unwrap()
                    .extra_size
                    .set(used.unwrap() as u16);
            },
            "xattr name stored twice",
        ),
        (
            "acl",
            &|raw| {
                let used = inline_used(raw);
                let used = insert(
                    inline_area_mut(raw),
                    used,
                    XATTR_INDEX_POSIX_ACL_ACCESS,
                    b"",
                    b"\x02\0\0\0",
                )
                .unwrap();
                Inode::from_slot_mut(raw)
                    .unwrap()
                    .extra_size
                    .set(used.unwrap() as u16);
            },
            "xattr ACL value malformed",
        ),
        (
            "tail",
            &|raw| *inline_area_mut(raw).last_mut().unwrap() = 1,
            "xattr area used length or tail invalid",
        ),
    ];
    for (what, damage, reason) in cases {
        let fs = make_fs(&format!("xinl-{}", what.replace(' ', "-")));
        let d1 = ino_of(&fs.img, "d1");
        set_inline(&fs.img, d1, SOME, damage);
        assert!(
            validate_inline(&Image::open(&fs.img).inode(d1).raw).is_err(),
            "{what}"
        );
        detect_repair(
            &fs.img,
            &format!("Inode {d1} has a corrupt inline xattr area ({reason}); clear it"),
        );
    }
}

#[test]
fn block_damage_is_dropped() {
    let cases: [Case<XattrBlock>; 5] = [
        (
            "refcount",
            &|x| x.header.refcount.set(2),
            "xattr block header invalid",
        ),
        (
            "magic",
            &|x| x.header.magic.set(0),
            "xattr block header invalid",
        ),
        (
            "reserved",
            &|x| x.header.reserved[3] = 1,
            "xattr block header invalid",
        ),
        ("entry", &|x| x.area[2] = 0xFF, "xattr entry malformed"),
        (
            "used",
            &|x| x.header.used.set(4064 + 4),
            "xattr area used length or tail invalid",
        ),
    ];
    for (what, damage, reason) in cases {
        let fs = make_fs(&format!("xblk-{what}"));
        let b_ino = ino_of(&fs.img, "b");
        let blk = give_block(&fs.img, b_ino, SOME, damage);
        let out = detect_repair(
            &fs.img,
            &format!("Inode {b_ino} xattr block {blk} is corrupt ({reason}); clear it"),
        );
        assert!(
            out.contains(&format!("Inode {b_ino} block count is 3, should be 2")),
            "{out}"
        );
        let im = Image::open(&fs.img);
        assert_eq!(im.inode(b_ino).i().xattr_block.get(), 0);
        im.check();
    }
}

#[test]
fn block_checksum() {
    let fs = make_fs("xcsum");
    let a = ino_of(&fs.img, "a");
    let b = give_block(&fs.img, a, SOME, |_| {});
    let mut blk = read_block(&fs.img, b);
    blk[100] ^= 1;
    write_block(&fs.img, b, &blk);
    detect_repair(
        &fs.img,
        &format!("Inode {a} xattr block {b} is corrupt (xattr block checksum mismatch); clear it"),
    );
}

#[test]
fn name_in_both_areas() {
    let fs = make_fs("xboth");
    let a = ino_of(&fs.img, "a");
    set_inline(&fs.img, a, &[(XATTR_INDEX_TRUSTED, b"t", b"1")], |_| {});
    let b = give_block(&fs.img, a, SOME, |_| {});
    detect_repair(
        &fs.img,
        &format!(
            "Inode {a} xattr block {b} holds a name that its inode's inline xattr area holds \
             too; clear it"
        ),
    );
    let r = Image::open(&fs.img).inode(a);
    assert_eq!((r.i().xattr_block.get(), r.i().extra_size.get()), (0, 8));
}

#[test]
fn block_accounting() {
    // Not counted in `blocks`.
    let fs = make_fs("xcount");
    let a = ino_of(&fs.img, "a");
    give_block(&fs.img, a, SOME, |_| {});
    edit_inode(&fs.img, a, true, |i| i.blocks.set(1));
    detect_repair(&fs.img, &format!("Inode {a} block count is 1, should be 2"));

    // Not marked in the block bitmap.
    let fs = make_fs("xbitmap");
    let d2 = ino_of(&fs.img, "d2");
    let b = give_block(&fs.img, d2, SOME, |_| {});
    let bit = u32::try_from(b - Image::open(&fs.img).geo.first_group_block()).unwrap();
    common::fsck::flip_bitmap_bit(&fs.img, false, bit, false);
    detect_repair(&fs.img, &format!("+{b}"));

    // A pointer to group metadata.
    let fs = make_fs("xillegal");
    let a = ino_of(&fs.img, "a");
    let bitmap = Image::open(&fs.img).geo.block_bitmap_block(0).unwrap();
    edit_inode(&fs.img, a, true, |i| {
        i.xattr_block.set(bitmap);
        i.blocks.set(i.blocks.get() + 1);
    });
    detect_repair(
        &fs.img,
        &format!("Inode {a} has an illegal xattr block {bitmap} (a group's bitmap or inode table)"),
    );
}

#[test]
fn block_claimed_twice_is_cloned() {
    let fs = make_fs("xdup");
    let a = ino_of(&fs.img, "a");
    let d1 = ino_of(&fs.img, "d1");
    let b = give_block(&fs.img, a, SOME, |_| {});
    edit_inode(&fs.img, d1, true, |i| {
        i.xattr_block.set(b);
        i.blocks.set(i.blocks.get() + 1);
    });
    detect_repair(
        &fs.img,
        &format!("Inode {d1} xattr block {b} is claimed by more than one owner; clone it"),
    );
    let im = Image::open(&fs.img);
    let copy = im.inode(d1).i().xattr_block.get();
    assert_ne!(copy, b);
    assert_eq!(im.inode(a).i().xattr_block.get(), b);
    let x = read_block(&fs.img, copy);
    XattrBlock::from_block(&x)
        .validate(im.seed(), copy)
        .unwrap();
    assert_eq!(
        XattrBlock::from_block(&x).area[..],
        XattrBlock::from_block(&read_block(&fs.img, b)).area[..]
    );
    im.check();
}
