/* errors.h: the D-Bus error names of the contract, defined once. */
#pragma once

#define ERROR_INVALID_TARGET "org.liveswap1.Error.InvalidTarget"
#define ERROR_BUSY "org.liveswap1.Error.Busy"
#define ERROR_UPGRADE_FAILED "org.liveswap1.Error.UpgradeFailed"
#define ERROR_NO_PREVIOUS "org.liveswap1.Error.NoPrevious"
#define ERROR_HOOK_FAILED "org.liveswap1.Error.HookFailed"
#define ERROR_INVALID_ARGUMENT "org.liveswap1.Error.InvalidArgument"
#define ERROR_REEXEC_FAILED "org.liveswap1.Error.ReexecFailed"
#define ERROR_ACCESS_DENIED "org.freedesktop.DBus.Error.AccessDenied"
