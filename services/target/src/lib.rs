//! star-target: the kernel's LIO iSCSI target, driven through configfs.
