import XCTest
import Model
import Import
import Kernels
import Formats
