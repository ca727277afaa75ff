'use strict'
// What the Node examples share besides the command line: Linux's file mode
// bits (fs.constants has some of them, not all), and who asks for an
// operation.

const MODES = {
  S_IFMT: 0o170000,
  S_IFREG: 0o100000,
  S_IFDIR: 0o040000,
  S_IFLNK: 0o120000,
  S_IFIFO: 0o010000,
  S_IFSOCK: 0o140000,
  S_IFCHR: 0o020000,
  S_IFBLK: 0o060000,
  S_ISUID: 0o4000,
  S_ISGID: 0o2000,
  S_IXGRP: 0o0010,
  O_ACCMODE: 3,
  O_TRUNC: 0o1000,
  O_APPEND: 0o2000
}

// The caller of the operation running: fusehost tells (Fuse.context());
// under fuse-native, which cannot, it is this process.
function caller (Fuse) {
  return (typeof Fuse.context === 'function' && Fuse.context()) ||
    { uid: process.getuid(), gid: process.getgid() }
}

module.exports = { ...MODES, caller }
