"""Device-side runners (Android via adb) used by `mfsbench device --adb`."""
