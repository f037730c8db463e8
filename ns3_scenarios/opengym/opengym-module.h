// Umbrella header of the opengym library (spaces, containers, interface, transports, env base class).
#ifndef IABMETA_OPENGYM_MODULE_H
#define IABMETA_OPENGYM_MODULE_H

#include "opengym-container.h"
#include "opengym-env.h"
#include "opengym-interface.h"
#include "opengym-space.h"
#include "opengym-transport.h"

#endif
