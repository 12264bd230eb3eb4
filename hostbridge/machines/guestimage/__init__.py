"""The QEMU guest assembled in pure Python from Debian's own .deb files (boot2docker's design).

``deb`` reads .deb archives, ``cpio`` writes the initramfs, ``elf`` finds the shared libraries
and kernel modules a file needs, ``kmod`` writes modules.dep/modules.alias, ``assemble``
chooses the files and writes the kernel + initramfs. No root, no external tools.
"""
