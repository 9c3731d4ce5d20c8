#!/usr/bin/env bash
# Copy the horse and bird folders of an image-folder CIFAR-10 copy into .device/ (ignored by git),
# so that a GPU run, which receives only the working tree, can read them.
#   bash tools/pack_device_data.sh PATH/TO/cifar10-jpg
set -euo pipefail
src=${1:?usage: tools/pack_device_data.sh PATH/TO/cifar10-jpg}
for split in train test; do
  for cls in horse bird; do
    mkdir -p ".device/cifar10-jpg/$split"
    cp -r "$src/$split/$cls" ".device/cifar10-jpg/$split/"
  done
done
du -sh .device/cifar10-jpg
