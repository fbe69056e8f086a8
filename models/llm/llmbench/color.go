package main

import "image/color"

type plotColor [3]uint8

func (c plotColor) rgba() color.Color { return color.RGBA{c[0], c[1], c[2], 255} }
