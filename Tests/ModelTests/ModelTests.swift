import Formats
import Import
import Kernels
import Model
import XCTest
