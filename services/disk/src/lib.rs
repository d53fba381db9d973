//! star-disk: the shared disk both controllers read one truth from.
