import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { feature } from 'topojson-client'
import type { GeometryCollection, Topology } from 'topojson-specification'

/** The map's frame in equirectangular units (degrees): x = longitude + 180, y = 90 - latitude; 84°N to 60°S. */
export const MAP_VIEW_BOX = { x: 0, y: 6, width: 360, height: 144 }

let landPath: string | undefined

/**
 * Natural Earth's land outline (world-atlas, 1:110m) as one SVG path, drawn once per process: the
 * page then needs no map library and no tile server, and works offline.
 */
export function worldLandPath(): string {
  if (landPath !== undefined) return landPath
  const file = createRequire(import.meta.url).resolve('world-atlas/land-110m.json')
  const topology = JSON.parse(readFileSync(file, 'utf8')) as Topology<{ land: GeometryCollection }>
  const land = feature(topology, topology.objects.land)
  const round = (value: number) => Math.round(value * 10) / 10
  const parts: string[] = []
  for (const shape of land.features) {
    const geometry = shape.geometry
    const polygons = geometry.type === 'MultiPolygon' ? geometry.coordinates : geometry.type === 'Polygon' ? [geometry.coordinates] : []
    for (const polygon of polygons) {
      for (const ring of polygon) {
        for (const piece of splitAtAntimeridian(ring as [number, number][])) {
          let previous = ''
          const points: string[] = []
          for (const [longitude, latitude] of piece) {
            const point = `${round(longitude + 180)} ${round(90 - latitude)}`
            if (point !== previous) points.push(point)
            previous = point
          }
          if (points.length >= 3) parts.push(`M${points.join('L')}Z`)
        }
      }
    }
  }
  landPath = parts.join('')
  return landPath
}

/**
 * A ring that crosses the antimeridian (Chukotka, Fiji) jumps from one side of the map to the other;
 * drawn as is, that jump is a line across the whole world. Cut there instead, starting just after a
 * crossing, so that each piece begins and ends at the map's edge and closes along it.
 */
function splitAtAntimeridian(ring: [number, number][]): [number, number][][] {
  const crosses = (index: number) => Math.abs(ring[index]![0] - ring[index - 1]![0]) > 180
  const first = ring.findIndex((_, index) => index > 0 && crosses(index))
  if (first === -1) return [ring]
  // The ring's last point repeats its first: rotate without it, then walk once around.
  const open = ring.slice(0, -1)
  const rotated = [...open.slice(first), ...open.slice(0, first)]
  const pieces: [number, number][][] = [[]]
  rotated.forEach((point, index) => {
    if (index > 0 && Math.abs(point[0] - rotated[index - 1]![0]) > 180) pieces.push([])
    pieces.at(-1)!.push(point)
  })
  return pieces
}
