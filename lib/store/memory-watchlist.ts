import type { EnrolledFace, Person, WatchlistMatch, WatchlistStore } from "./watchlist-store.ts";

/**
 * Exact search over all enrolled faces of one model: a matrix–vector product over a flat Float32Array, faster
 * than any index at watchlist sizes. Rebuilt lazily after changes.
 */
export class MemoryWatchlistStore implements WatchlistStore {
  private people = new Map<string, Person>();
  private faces = new Map<string, EnrolledFace>();
  private matrices = new Map<string, { ids: string[]; dim: number; data: Float32Array }>();

  async upsertPerson(person: Person) {
    this.people.set(person.id, { ...person });
  }

  async addFace(face: EnrolledFace) {
    if (!this.people.has(face.personId)) throw new Error(`unknown person ${face.personId}`);
    this.faces.set(face.faceId, face);
    this.matrices.delete(face.modelId);
  }

  async removePerson(personId: string) {
    for (const [id, f] of this.faces) if (f.personId === personId) await this.removeFace(id);
    return this.people.delete(personId);
  }

  async removeFace(faceId: string) {
    const face = this.faces.get(faceId);
    if (!face) return false;
    this.faces.delete(faceId);
    this.matrices.delete(face.modelId);
    return true;
  }

  async listPeople() {
    const counts = new Map<string, number>();
    for (const f of this.faces.values()) counts.set(f.personId, (counts.get(f.personId) ?? 0) + 1);
    return [...this.people.values()].map((p) => ({ ...p, faces: counts.get(p.id) ?? 0 }));
  }

  async match(modelId: string, vector: Float32Array, k: number): Promise<WatchlistMatch[]> {
    const m = this.matrix(modelId);
    if (!m || m.dim !== vector.length) return [];
    const best = new Map<string, { score: number; faceId: string }>();
    for (let row = 0; row < m.ids.length; row++) {
      let dot = 0;
      const base = row * m.dim;
      for (let i = 0; i < m.dim; i++) dot += m.data[base + i]! * vector[i]!;
      const face = this.faces.get(m.ids[row]!)!;
      const current = best.get(face.personId);
      if (!current || dot > current.score) best.set(face.personId, { score: dot, faceId: face.faceId });
    }
    return [...best.entries()]
      .sort((a, b) => b[1].score - a[1].score)
      .slice(0, k)
      .map(([personId, { score, faceId }]) => ({ person: this.people.get(personId)!, faceId, score }));
  }

  private matrix(modelId: string) {
    let m = this.matrices.get(modelId);
    if (!m) {
      const faces = [...this.faces.values()].filter((f) => f.modelId === modelId);
      if (faces.length === 0) return undefined;
      const dim = faces[0]!.vector.length;
      const data = new Float32Array(faces.length * dim);
      faces.forEach((f, i) => data.set(f.vector, i * dim));
      m = { ids: faces.map((f) => f.faceId), dim, data };
      this.matrices.set(modelId, m);
    }
    return m;
  }
}
