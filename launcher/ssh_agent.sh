#!/bin/sh
# The ssh every remote start goes through: mpiexec's on the main node, and each daemon's when
# the MPI spawns a tree. MPIs hand this path to the daemons they start, so it is the same on
# every node; what differs per node (its own key, the peers' pinned host keys) is the config
# MNP_SSH_CONFIG names, inside that node's 0700 state directory.
exec ssh -F "${MNP_SSH_CONFIG:?MNP_SSH_CONFIG is not set: start ssh through mnp-launch}" "$@"
