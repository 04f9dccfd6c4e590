// Filled by the SQLCipher layer.
