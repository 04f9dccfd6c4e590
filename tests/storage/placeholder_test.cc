#include <gtest/gtest.h>
TEST(StoragePlaceholder, Builds) { EXPECT_EQ(1 + 1, 2); }
