// The data layer in one include: datasets, loader, image transforms, MNIST and ImageFolder.
#pragma once

#include "moxing/data/dataloader.h"
#include "moxing/data/dataset.h"
#include "moxing/data/image.h"
#include "moxing/data/image_folder.h"
#include "moxing/data/mnist.h"
