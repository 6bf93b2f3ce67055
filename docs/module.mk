# SPDX-License-Identifier: LGPL-2.1-or-later
# Installed: xenram(1), the command.  xensim(1) documents the simulator,
# which runs from the build tree with its stand-in libraries (it is not
# installed, so neither is its page); xenram-demo(1) a demonstration in
# libexec, read with man -l docs/man/xenram-demo.1.
MANPAGES += docs/man/xenram.1
